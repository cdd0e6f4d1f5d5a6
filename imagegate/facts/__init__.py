"""What an image or a container is: layers, image facts, running-container facts."""
