"""Text that XML 1.0 can carry.

Open311's XML feed carries whatever citizens and apps typed. XML 1.0 has no
way to write most C0 control characters (even as ``&#11;``), lone surrogates,
U+FFFE or U+FFFF: one of them in one report would make the whole feed not
well-formed. They are removed when a report arrives and again when anything
is written as XML (rows stored before, the categories file).
"""

from __future__ import annotations

import re

#: Characters XML 1.0 cannot carry: C0 controls except tab, LF and CR; surrogates; U+FFFE, U+FFFF.
NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def xml_safe(text: str) -> str:
    """``text`` without the characters XML 1.0 cannot carry."""
    return NOT_XML.sub("", text)
