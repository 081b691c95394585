"""A model field that keeps webhook signing secrets encrypted at rest.

A signing secret has to stay usable to sign, so unlike tokens it cannot be stored as a hash.
It is stored as a Fernet token (AES-128-CBC + HMAC-SHA256) under keys derived from
``settings.WEBHOOK_SECRET_KEYS`` (the first key encrypts, any of them decrypts, so keys can be
rotated), and is plaintext only in memory.
"""

import base64
import hashlib
from functools import cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import models

PREFIX = "enc1:"


@cache
def _fernet(keys: tuple[str, ...]) -> MultiFernet:
    if not keys:
        raise ImproperlyConfigured("WEBHOOK_SECRET_KEYS needs at least one key.")
    derived = [
        Fernet(base64.urlsafe_b64encode(hashlib.sha256(f"webhook-secrets:{key}".encode()).digest()))
        for key in keys
    ]
    return MultiFernet(derived)


def encrypt(plaintext: str) -> str:
    token = _fernet(tuple(settings.WEBHOOK_SECRET_KEYS)).encrypt(plaintext.encode())
    return PREFIX + token.decode()


def decrypt(stored: str) -> str:
    if not stored.startswith(PREFIX):
        return stored
    try:
        return _fernet(tuple(settings.WEBHOOK_SECRET_KEYS)).decrypt(stored[len(PREFIX) :]).decode()
    except InvalidToken:
        raise ImproperlyConfigured(
            "A webhook signing secret cannot be decrypted: WEBHOOK_SECRET_KEYS (or SECRET_KEY) "
            "changed. Add the old key to WEBHOOK_SECRET_KEYS."
        ) from None


class EncryptedSecretField(models.TextField):
    def from_db_value(self, value, expression, connection):
        return decrypt(value) if value else value

    def get_prep_value(self, value):
        value = super().get_prep_value(value)
        return encrypt(value) if value else value
