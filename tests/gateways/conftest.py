import pytest


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    # The default hasher costs a second or more per user; these tests sign in admins.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
