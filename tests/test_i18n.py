"""User-facing text: every message used anywhere has a text in both Bahasa Indonesia and English."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from babel.messages.pofile import read_po

from dashboard.i18n import LANGUAGES, MESSAGES, missing_texts, translate_to

DASHBOARD = Path(__file__).resolve().parents[1] / "dashboard"
TRANSLATIONS = DASHBOARD / "translations"
PLACEHOLDER = re.compile(r"\{(\w+)\}")

#: Calls whose argument (by position, or the ``key=`` keyword) is a message key.
CARRIERS: dict[str, int | str] = {
    "translate": 0,
    "translate_to": 1,
    "_error_page": 1,
    "_throttled": 1,
    "WorkflowError": 1,
    "ApiKeyError": 1,
    "IntakeError": "key",
}
#: Template variables that hold a key the Python code chose (and that the Python scan checks).
TEMPLATE_KEY_VARIABLES = {"message_key"}


def catalogue(path: Path) -> dict[str, tuple[str, bool]]:
    """msgid → (msgstr, fuzzy) of one .po/.pot file, empty texts included."""
    with path.open("rb") as po:
        return {m.id: (m.string, m.fuzzy) for m in read_po(po) if m.id}


def catalogues() -> dict[str, dict[str, tuple[str, bool]]]:
    return {language: catalogue(TRANSLATIONS / language / "LC_MESSAGES" / "messages.po") for language in LANGUAGES}


def enumerations() -> dict[str, set[str]]:
    """The codes each prefix of a key built at run time is built from (``f"status_{…}"``, ``'kind_' ~ …``)."""
    from dashboard.accounts.auth import Role
    from dashboard.alarms.lifecycle import AlarmState, Anomaly, Resolution
    from dashboard.alarms.stats import GROUPS
    from dashboard.devices.service import ServiceMode
    from dashboard.devices.sites import URGENCY
    from dashboard.devices.supervision import TroubleType
    from dashboard.reports.workflow import Enforcement, Rejection, Status
    from firmware_bridge.payloads import GatewayState, Kind

    def values(*enums: type) -> set[str]:
        return {member.value for enum in enums for member in enum}

    return {
        "kind_": values(Kind),
        "state_": values(AlarmState),
        "site_state_": set(URGENCY) - values(AlarmState),  # board.js: alarm states say state_, the rest site_state_
        "resolution_": values(Resolution),
        "status_": values(Status),
        "res_": values(Rejection, Enforcement),
        "trouble_": values(TroubleType),
        "anomaly_": values(Anomaly),
        "gw_": values(GatewayState) | {"unknown"},  # the registry's state of a gateway not heard from yet
        "mode_": values(ServiceMode),
        "service_set_": values(ServiceMode),
        "role_": values(Role),
        "group_": set(GROUPS),
        "error_": photo_refusals(),  # public.py: translate(f"error_{exc.reason}")
    }


def photo_refusals() -> set[str]:
    tree = ast.parse((DASHBOARD / "reports" / "photos.py").read_text())
    return {
        call.args[1].value
        for call in ast.walk(tree)
        if isinstance(call, ast.Call) and getattr(call.func, "id", None) == "PhotoRefused" and len(call.args) > 1
    }


class KeyScan:
    """The message keys one Python module uses: literal, chosen by a condition, or built with an f-string."""

    def __init__(self, tree: ast.Module) -> None:
        self.keys: set[str] = set()
        self.prefixes: set[str] = set()
        self.unreadable: list[str] = []
        self.dicts = {
            target.id: node.value
            for node in tree.body
            if isinstance(node, ast.Assign | ast.AnnAssign) and isinstance(node.value, ast.Dict)
            for target in (node.targets if isinstance(node, ast.Assign) else [node.target])
            if isinstance(target, ast.Name)
        }
        self.keys |= {
            node.value
            for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str)
            if re.fullmatch(r"error_[a-z0-9_]*[a-z0-9]", node.value)  # the error keys' naming convention
        }
        self.block(tree.body, {})

    def block(self, statements: list[ast.stmt], outer: dict[str, ast.expr]) -> None:
        """Walk statements in order, so that a name resolves to its latest assignment in this block or around it."""
        env = dict(outer)
        for statement in statements:
            for field, value in ast.iter_fields(statement):
                if isinstance(value, list) and value and isinstance(value[0], ast.stmt | ast.excepthandler):
                    for item in value:
                        if isinstance(item, ast.excepthandler):
                            self.block(item.body, env)
                    if isinstance(value[0], ast.stmt):
                        self.block(value, env)
                elif field not in ("decorator_list", "returns") and isinstance(value, ast.AST):
                    self.calls(value, env)
                elif isinstance(value, list):
                    for item in value:
                        if isinstance(item, ast.AST):
                            self.calls(item, env)
            if isinstance(statement, ast.Assign) and len(statement.targets) == 1:
                if isinstance(statement.targets[0], ast.Name):
                    env[statement.targets[0].id] = statement.value

    def calls(self, node: ast.AST, env: dict[str, ast.expr]) -> None:
        for call in ast.walk(node):
            if not isinstance(call, ast.Call):
                continue
            name = getattr(call.func, "id", None) or getattr(call.func, "attr", None)
            where = CARRIERS.get(name or "")
            if isinstance(where, int) and len(call.args) > where:
                self.key_of(call.args[where], env)
            for keyword in call.keywords:
                if isinstance(where, str) and keyword.arg == where:
                    self.key_of(keyword.value, env)

    def key_of(self, expr: ast.expr, env: dict[str, ast.expr]) -> None:
        match expr:
            case ast.Constant(value=str(key)):
                self.keys.add(key)
            case ast.JoinedStr(values=[ast.Constant(value=str(prefix)), *_]):
                self.prefixes.add(prefix)
            case ast.IfExp(body=body, orelse=orelse):
                self.key_of(body, env)
                self.key_of(orelse, env)
            case ast.BoolOp(values=values):
                for value in values:
                    self.key_of(value, env)
            case ast.Call(func=ast.Attribute(value=ast.Name(id=table), attr="get"), args=[_, *default]):
                for value in [*default, *getattr(self.dicts.get(table), "values", [])]:
                    self.key_of(value, env)
            case ast.Name(id=name) if name in env:
                self.key_of(env[name], env)
            case ast.Name() | ast.Attribute():
                pass  # a parameter or an exception's .key: the callers' constants are scanned
            case _:
                self.unreadable.append(ast.unparse(expr))


def keys_in_python() -> tuple[set[str], set[str], list[str]]:
    keys: set[str] = set()
    prefixes: set[str] = set()
    unreadable: list[str] = []
    for module in sorted(DASHBOARD.rglob("*.py")):
        scan = KeyScan(ast.parse(module.read_text(), str(module)))
        keys |= scan.keys
        prefixes |= scan.prefixes
        unreadable += [f"{module.relative_to(DASHBOARD)}: {text}" for text in scan.unreadable]
    return keys, prefixes, unreadable


def keys_in_templates() -> tuple[set[str], set[str], list[str]]:
    keys: set[str] = set()
    prefixes: set[str] = set()
    unreadable: list[str] = []
    for template in sorted((DASHBOARD / "templates").glob("*.html")):
        for argument in re.findall(r"(?<![\w.])_\(\s*([^)]*)\)", template.read_text()):
            if match := re.match(r"""['"](\w+)['"]\s*~""", argument):
                prefixes.add(match[1])
            elif match := re.fullmatch(r"""['"](\w+)['"]\s+if\s+.+\s+else\s+['"](\w+)['"]\s*""", argument, re.S):
                keys |= {match[1], match[2]}
            elif match := re.match(r"""['"](\w+)['"]""", argument):
                keys.add(match[1])
            elif argument.strip() not in TEMPLATE_KEY_VARIABLES:
                unreadable.append(f"{template.name}: _({argument})")
    return keys, prefixes, unreadable


def keys_in_scripts() -> tuple[set[str], set[str]]:
    keys: set[str] = set()
    prefixes: set[str] = set()
    for script in ("board.js", "report.js"):
        text = (DASHBOARD / "static" / script).read_text()
        keys |= set(re.findall(r"""\bt\(\s*"([a-z0-9_]+)"\s*[,)]""", text))
        prefixes |= set(re.findall(r"`([a-z][a-z0-9_]*_)\$\{", text))  # t(`kind_${alarm.kind}`)
    return keys, prefixes


def test_every_language_has_every_key() -> None:
    keys = {language: set(MESSAGES[language]) for language in LANGUAGES}
    assert keys["id"] == keys["en"]
    found = {language: set(texts) for language, texts in catalogues().items()}
    assert found["id"] == found["en"] == set(catalogue(TRANSLATIONS / "messages.pot"))


def test_no_text_is_empty_or_fuzzy() -> None:
    for language, texts in catalogues().items():
        empty = sorted(key for key, (text, fuzzy) in texts.items() if not text.strip() or fuzzy)
        assert empty == [], language


def test_every_key_used_anywhere_has_a_text_in_both_languages() -> None:
    keys, prefixes, unreadable = keys_in_python()
    page_keys, page_prefixes, page_unreadable = keys_in_templates()
    script_keys, script_prefixes = keys_in_scripts()
    used = keys | page_keys | script_keys
    assert used, "found no message keys: the patterns above are out of date"
    assert {"report_updated", "error_move", "http_error", "csrf_failed", "login_throttled", "account_created"} <= used
    assert unreadable + page_unreadable == [], "a message key this test cannot read: teach KeyScan its shape"
    built = enumerations()
    assert sorted((prefixes | page_prefixes | script_prefixes) - built.keys()) == [], "add the codes to enumerations()"
    used |= {prefix + code for prefix, codes in built.items() for code in codes}
    for language in LANGUAGES:
        missing = sorted(key for key in used if key not in MESSAGES[language])
        assert missing == [], language


def test_every_status_and_resolution_has_a_label() -> None:
    from dashboard.reports.workflow import Enforcement, Rejection, Status

    for language in LANGUAGES:
        for status in Status:
            assert f"status_{status.value}" in MESSAGES[language]
        for resolution in [*Rejection, *Enforcement]:
            assert f"res_{resolution.value}" in MESSAGES[language]


def test_placeholders_match_between_languages() -> None:
    for key, text in MESSAGES["id"].items():
        assert set(PLACEHOLDER.findall(text)) == set(PLACEHOLDER.findall(MESSAGES["en"][key])), key


def test_every_trouble_and_anomaly_has_a_label() -> None:
    from dashboard.alarms.lifecycle import Anomaly
    from dashboard.devices.supervision import TroubleType

    for language in LANGUAGES:
        missing = [t.value for t in TroubleType if f"trouble_{t.value}" not in MESSAGES[language]]
        missing += [a.value for a in Anomaly if f"anomaly_{a.value}" not in MESSAGES[language]]
        assert missing == [], language


def test_a_missing_text_shows_its_key_and_is_counted() -> None:
    before = missing_texts().get(("en", "no_such_message"), 0)
    assert translate_to("en", "no_such_message") == "no_such_message"
    assert translate_to("en", "no_such_message") == "no_such_message"
    assert missing_texts()[("en", "no_such_message")] == before + 2


def test_notices_speak_the_boards_words_in_both_languages() -> None:
    from dashboard.alarms.notices import escalated_texts, settled_texts

    alarm = {"kind": "fire", "number": 7, "button": "btn-1", "site": {"name": "Pasar Andoolo"}, "press_count": 3}
    escalated = escalated_texts({**alarm, "state": "unacknowledged"}, 130)
    assert set(escalated) == set(LANGUAGES)
    assert escalated["id"] == "Alarm KEBAKARAN #7 di Pasar Andoolo belum ditanggapi selama 2 menit (3 tekanan)."
    assert escalated["en"] == "FIRE alarm #7 at Pasar Andoolo not acknowledged for 2 min (3 press(es))."
    assert "45 detik" in escalated_texts({**alarm, "state": "unacknowledged"}, 45)["id"]
    acknowledged = settled_texts({**alarm, "state": "acknowledged", "acknowledged_by": "ani"})
    assert acknowledged["id"] == "Alarm KEBAKARAN #7 di Pasar Andoolo sudah ditanggapi oleh ani."
    resolved = settled_texts({**alarm, "state": "resolved", "resolution": "false_alarm"})
    assert resolved["en"] == "FIRE alarm #7 at Pasar Andoolo was resolved (False alarm)."
