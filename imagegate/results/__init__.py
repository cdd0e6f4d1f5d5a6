"""From findings to reports: findings, the verdict, JUnit/JSON/Markdown, SARIF."""
