"""Schemathesis hooks for hello-birthday, loaded by scripts/schemathesis.sh.

They bring generated requests in line with rules of openapi.yaml that JSON Schema cannot
express, and work around one way schemathesis misjudges a path value. They touch no check
and no response. What they change, and why, is listed here.

1. `dateOfBirth` must be before today (UTC). A later date matches the schema and is refused
   with 400 `invalid-date-of-birth`, as documented. The generator draws such dates most of
   the time (`format: date` spans the years 0000-9999), and `positive_data_acceptance` would
   report each one. Every well-formed calendar date on or after today moves to a year in
   1600-1999 with the same place in the 400-year leap cycle, so 29 February stays valid.
   Malformed and impossible dates still go out as generated. Future dates are refused in
   tests/api/hello.rs.

2. The service judges a username by its NFC form, while the `Username` pattern judges the
   string as sent. So `A` + U+0303 (combining tilde) fails the pattern but is the user
   `Ã`. Usernames go out in NFC, where the two judgements agree. NFD input becoming the NFC
   user is tested in tests/api/hello.rs.

3. In the fuzzing phase the username comes already percent-encoded. Schemathesis then tests
   that encoded text against the pattern when it decides whether a "negative" value really
   violates the schema. A non-ASCII letter such as `ª` fails as `%C2%AA`, although its
   generator produced a value the schema allows and the service rightly accepts. So the
   hook writes the username back decoded, and schemathesis judges what the server reads.

4. Which characters are letters depends on the Unicode version. The pattern lists those of
   the Rust toolchain that built the binary. Python's `unicodedata`, which does the NFC
   above, is older and does not know thousands of letters added since (U+A7CE, for one). A
   code point that Python sees as unassigned is replaced with U+FFFD, which is no letter in
   any version.

A username whose decoded form still holds a `%` is left as generated, because writing it
back decoded would let schemathesis decode it a second time when it sends it.
"""

import datetime
import re
import unicodedata
from urllib.parse import unquote

import schemathesis

_DATE_SHAPE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


@schemathesis.hook
def before_call(context, case, kwargs):
    _keep_dates_of_birth_in_the_past(case)
    _send_usernames_as_the_service_reads_them(case)


def _keep_dates_of_birth_in_the_past(case):
    body = case.body
    if not isinstance(body, dict):
        return
    value = body.get("dateOfBirth")
    if not isinstance(value, str) or not _DATE_SHAPE.fullmatch(value):
        return
    try:
        date = datetime.date.fromisoformat(value)
    except ValueError:
        return  # not a calendar date (or year 0000, which is in the past anyway)
    today = datetime.datetime.now(datetime.timezone.utc).date()
    if date >= today:
        body["dateOfBirth"] = f"{1600 + date.year % 400:04d}{value[4:]}"


def _send_usernames_as_the_service_reads_them(case):
    parameters = case.path_parameters
    if not parameters:
        return
    value = parameters.get("username")
    if not isinstance(value, str):
        return
    # The fuzzing phase hands over the value already percent-encoded for the wire.
    decoded = unquote(value)
    if "%" in decoded:
        return
    known = "".join("\ufffd" if unicodedata.category(c) == "Cn" else c for c in decoded)
    normalised = unicodedata.normalize("NFC", known)
    if normalised != value:
        # Written decoded: schemathesis judges a value a hook wrote as it stands, and
        # percent-encodes it when it sends it.
        parameters["username"] = normalised
