"""`flask translate …`, as the Mega-Tutorial has it."""

import os


def register(app):
    """Attach the translate group to the app's CLI."""
    @app.cli.group()
    def translate():
        """Translation and localization commands."""

    @translate.command()
    def compile():
        """Compile all languages."""
        if os.system('pybabel compile -d app/translations'):
            raise RuntimeError('compile command failed')
