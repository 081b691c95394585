"""Redact credentials from free text before it is stored.

Runners send log messages, error summaries and error texts that often quote connection strings,
HTTP requests or configuration. ``scrub`` replaces the secret part of every credential it
recognises with ``[REDACTED]`` and leaves everything around it alone, so that
``postgres://etl:hunter2@db:5432/dw`` becomes ``postgres://etl:[REDACTED]@db:5432/dw``: the reader
still sees which database, which user and which header was involved.

Approach
--------
Two passes, each a single compiled regular expression:

1. Private-key blocks (``-----BEGIN ... PRIVATE KEY-----`` to the matching END line). They span
   lines and may sit inside a JSON string as literal ``\\n`` escapes, so they go first; otherwise a
   ``private_key=...`` pair below would stop at the first space of the header and leave the body.
2. One alternation of every other shape, scanned once from left to right. Each alternative names
   the group that holds the secret; the replacement swaps exactly that span and keeps the rest of
   the match (scheme, user, host, key name, quotes, auth scheme) verbatim. Because the scan is
   leftmost-first and matches never overlap, a URI is handled as a URI even when its user name
   happens to look like a key (``https://x-access-token:...@github.com``).

Performance: the input is untrusted and may be large, so every pattern is written to run in linear
time. Repetitions whose content could be matched in more than one way are possessive or bounded,
alternatives start at a word boundary (a negative look-behind), so a long run of word characters is
entered once rather than at every offset, and a redacted value never contains anything a pattern
could grow into. ``scrub`` is idempotent: scrubbing already scrubbed text changes nothing.

Deliberately out of scope: passwords that contain an unencoded ``/`` or ``?`` inside a URI (the URI
is then ambiguous), values given as the next word without ``=``/``:`` (``-p secret``, except for
``--password secret`` style long options), and high-entropy strings with no recognisable prefix or
key name.
"""

import re

REDACTED = "[REDACTED]"

# Key names whose value is a secret. Most may be glued to a prefix (PGPASSWORD, clientSecret,
# csrftoken, SecretAccessKey): the word is consumed whole and its ending checked with fixed-width
# look-behinds, which is linear, unlike backtracking through the word for every candidate suffix.
# The short names must stand alone, so "bypass=" and "compass=" are not passwords. Whole-word
# matching also comes from requiring the separator right after the key: "tokens_processed=" and
# "secretary=" never reach one.
_KEY_PREFIXES = (
    "api|access|secret|private|account|master|encryption|signing|storage|client|subscription"
)
_GLUED_SUFFIXES = ("password", "passwd", "passphrase", "secret", "token")
_SECRET_KEY_NAMES = (
    r"(?i:"
    r"(?:pwd|pass|sig|credentials?|(?:(?<=x-amz-)|(?<=x-goog-))signature)(?![a-z0-9])"
    r"|[a-z0-9]*+(?:"
    + "|".join(f"(?<={suffix})" for suffix in _GLUED_SUFFIXES)
    + "|(?<=key)(?:"
    + "|".join(f"(?<={prefix}key)" for prefix in _KEY_PREFIXES.split("|"))
    + "))"
    rf"|(?:{_KEY_PREFIXES})[_-]key"
    r")"
)

# The value after a secret key. Quoted values are taken whole, spaces included, up to the closing
# quote (or the end of the line if the quote never closes, which is safer than stopping early).
# Backslash escapes are honoured. "\"...\"" covers JSON embedded in a JSON string; "{...}" covers
# ODBC's braced values and whole JSON objects given as credentials. A closing quote or brace counts
# only when a delimiter follows it; otherwise ('x'y, ''abc) the quotes are part of an unquoted
# value. Unquoted values run to whitespace, ";", "&" or ","; after the first character a quote
# ends them only when it looks like a closing delimiter, and a backslash only before a quote (an
# escaped closing quote), so "password=ab\"cd" and "password=]\]x" are redacted whole.
_CLOSED = r"(?=[\s;&,.:)\]}>]|\Z)"
_PAIR_VALUE = (
    rf'"(?P<dq>(?:[^"\\\n]++|\\[^\n]?)*+)(?:"{_CLOSED}|(?=\n)|\Z)'
    rf"|'(?P<sq>(?:[^'\\\n]++|\\[^\n]?)*+)(?:'{_CLOSED}|(?=\n)|\Z)"
    r'|\\"(?P<esc>(?:[^"\\\n]++|\\(?!")[^\n]?)*+)(?:\\")?'
    rf"|\{{(?P<brace>(?:[^}}\n]++|\}}\}})*+)(?:\}}{_CLOSED}|(?=\n)|\Z)"
    r"|(?P<bare>[^\s;&,](?:[^\s;&,\"'\\]++|[\"'](?![\s;&,)\]}]|\Z)|\\(?![\"']|\Z))*+)"
)

_AUTH_SCHEMES = (
    r"(?i:bearer|basic|token|digest|negotiate|ntlm|bot|apikey|api-key|oauth|jwt|ssws|sso-key"
    r"|aws4-hmac-sha256)"
)

# Provider tokens recognisable by their prefix alone. The whole token is the secret.
_PREFIXED_TOKENS = (
    r"(?:AKIA|ASIA|AGPA|AIDA|AROA|AIPA|ANPA|ANVA|ABIA|ACCA)[A-Z0-9]{16}(?![A-Za-z0-9])"  # AWS ids
    r"|AIza[0-9A-Za-z_-]{30,}"  # Google API keys
    r"|gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{30,}"  # GitHub
    r"|glpat-[A-Za-z0-9_-]{20,}"  # GitLab
    r"|xox[abposr]-[A-Za-z0-9-]{10,}|xapp-[A-Za-z0-9-]{10,}"  # Slack
    r"|[sr]k_(?:live|test)_[A-Za-z0-9]{10,}"  # Stripe secret and restricted keys
    r"|sk-[A-Za-z0-9_-]{20,}"  # OpenAI-style keys (sk-..., sk-proj-...)
    r"|npm_[A-Za-z0-9]{36,}|pypi-[A-Za-z0-9_-]{50,}"  # package registries
    r"|SG\.[A-Za-z0-9_-]{16,}\.[A-Za-z0-9_-]{16,}"  # SendGrid
    r"|(?:gwt|eltk)_[A-Za-z0-9_-]{20,}"  # this product: gateway tokens and API keys
    r"|whsec_[A-Za-z0-9+/=]{16,}"  # this product: webhook signing secrets
    r"|eyJ[A-Za-z0-9_-]++\.[A-Za-z0-9_-]++\.[A-Za-z0-9_-]*+"  # JWT: header.payload.signature
    r"|(?<![A-Za-z0-9+/])[A-Za-z0-9+/]{86}==(?![A-Za-z0-9+/=])"  # Azure storage account keys
)

_PRIVATE_KEY_BLOCK = re.compile(
    r"-----BEGIN (?:[A-Z0-9]+ ){0,3}PRIVATE KEY(?: BLOCK)?-----"
    # The body may not contain "-----", so it stops at the END line or at the next block; without
    # an END line (a truncated message) everything after the header is treated as key material.
    r"(?:[^-]++|-(?!----))*+"
    r"(?:-----END (?:[A-Z0-9]+ ){0,3}PRIVATE KEY(?: BLOCK)?-----)?"
)

_CREDENTIAL = re.compile(
    # Every alternative starts a word, so one shared look-behind lets the scan step over the inside
    # of words, and the look-ahead over spaces and punctuation, before any alternative is tried.
    r"(?<![A-Za-z0-9])(?=[A-Za-z0-9-])(?:"
    # jdbc:oracle:thin:scott/tiger@//host:1521/svc. Oracle wants "@", "/" and ":" in a password
    # quoted, so stopping at them is exact, and it keeps a run of repeated prefixes linear.
    r"(?P<oracle>(?i:jdbc:oracle:[a-z0-9]+:)[^\s/@:\"']+/(?P<oracle_secret>[^\s/@:]++)(?=@))"
    # scheme://user:password@host for any scheme. The password may contain "@" and ":"; greedy
    # matching then backtracks to the last "@" before the host. It stops at "/", which every
    # later "://" contains, so overlapping attempts stay linear.
    r"|(?P<uri>(?<![+.\-_])[A-Za-z][A-Za-z0-9+.\-_]{0,40}://[^\s:/@?#\"'<>]*:"
    r"(?P<uri_secret>[^\s/?\"'<>]+)@)"
    # Authorization: Bearer xxx, Proxy-Authorization, header dicts and curl -H arguments.
    r"|(?P<auth>(?i:(?:proxy-)?authorization)\\?[\"']?[ \t]*[:=][ \t]*\\?[\"']?"
    rf"(?:{_AUTH_SCHEMES}[ \t]+)?(?P<auth_secret>[^\s\"'\\,;]+))"
    # A bare "Bearer <token>" outside a header; the length keeps prose ("Bearer auth") readable.
    r"|(?P<bearer>(?i:bearer)[ \t]+(?P<bearer_secret>[A-Za-z0-9\-._~+/]{20,}=*))"
    # Secret URLs of chat webhooks: the path is the credential.
    r"|(?P<hook>(?<![.\-])(?i:hooks\.slack\.com/(?:services|workflows|triggers)/"
    r"|discord(?:app)?\.com/api/webhooks/)(?P<hook_secret>[A-Za-z0-9_/\-]+))"
    # key=value, key: value, "key": "value", key => value, and --key value on command lines.
    rf"|(?P<pair>(?:(?<!-)--(?:[A-Za-z0-9]+-){{0,4}}{_SECRET_KEY_NAMES}[ \t]+(?=[^\s-])"
    # The look-ahead is a cheap gate: only a word followed by a separator is worth the more
    # expensive key-name match, which backtracks through the word looking for a secret suffix.
    r"|(?=[A-Za-z0-9]++(?i:[_-]key)?\\?[\"']?[ \t]*[=:])"
    rf"{_SECRET_KEY_NAMES}\\?[\"']?[ \t]*(?:=(?:>|=(?=[ \t]))?|:(?!:))[ \t]*)"
    rf"(?:{_PAIR_VALUE}))"
    rf"|(?P<token>(?<![_\-])(?:{_PREFIXED_TOKENS}))"
    r")"
)

# For each alternative, the groups that may hold its secret, in the order they are tried.
_SECRET_GROUP = {
    "oracle": ("oracle_secret",),
    "uri": ("uri_secret",),
    "auth": ("auth_secret",),
    "bearer": ("bearer_secret",),
    "hook": ("hook_secret",),
    "pair": ("dq", "sq", "esc", "brace", "bare"),
    "token": ("token",),
}


def _redact(match: re.Match[str]) -> str:
    # Each alternative is wrapped in one outer named group, which closes last, so lastgroup names
    # the alternative that matched.
    text = match.group()
    for name in _SECRET_GROUP[match.lastgroup or ""]:
        start, end = match.span(name)
        if start != -1:
            break
    if start == end:
        # Nothing to hide ("password=''"): leave the text as it was.
        return text
    offset = match.start()
    return text[: start - offset] + REDACTED + text[end - offset :]


# A redaction can complete a shape that was not there before (``A://PASSWORD:/;@`` scrubs as a
# ``PASSWORD:`` pair, which leaves a URI password behind it), so text that was changed is scrubbed
# again until it settles; text with no credential, nearly every log line, is scanned once.
_MAX_PASSES = 4


def _scrub_once(text: str) -> str:
    text = _PRIVATE_KEY_BLOCK.sub(REDACTED, text)
    return _CREDENTIAL.sub(_redact, text)


def scrub(text: str) -> str:
    """Return ``text`` with every recognised credential replaced by ``[REDACTED]``."""
    for _ in range(_MAX_PASSES):
        scrubbed = _scrub_once(text)
        if scrubbed == text:
            break
        text = scrubbed
    return text
