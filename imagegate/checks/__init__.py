"""Generic checks any gated project gets; the plugin collects them."""
