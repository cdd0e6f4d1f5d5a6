"""The pages."""

import sqlalchemy as sa
from crcmod import _crcfunext
from crcmod.predefined import mkPredefinedCrcFun
from flask import Blueprint, current_app, jsonify, render_template
from flask_babel import _
from flask_mail import Message

from app import db
from app.models import Post

bp = Blueprint('main', __name__)


@bp.route('/')
@bp.route('/index')
def index():
    """The latest posts (the table comes from the migrations)."""
    posts = db.session.scalars(sa.select(Post).order_by(Post.timestamp.desc())
                              .limit(current_app.config['POSTS_PER_PAGE'])).all()
    return render_template('index.html', title=_('Home'), posts=posts)


@bp.route('/stats')
def stats():
    """Page views, counted in Redis."""
    return jsonify(views=current_app.redis.incr('views'))


@bp.route('/checksum')
def checksum():
    """The CRC-32 of a greeting, from crcmod's C extension."""
    crc = mkPredefinedCrcFun('crc-32')(_('Hello').encode())
    return jsonify(crc32=f'{crc:08x}', extension=_crcfunext.__name__)


@bp.route('/welcome-mail')
def welcome_mail():
    """The welcome message new users get, as text (Flask-Mail builds it; nothing is sent)."""
    msg = Message(_('Welcome'), recipients=['reader@example.com'], body=_('Hello'))
    return msg.as_string(), 200, {'Content-Type': 'text/plain; charset=utf-8'}


@bp.route('/healthz')
def healthz():
    """Liveness: the app answers, whatever its services do."""
    return jsonify(status='ok')
