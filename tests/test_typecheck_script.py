"""tests/typecheck_user_script.py is type-checked by the tox ``typecheck`` env; here it
also runs, against the stand-in, so every call whose result type it pins works."""
import importlib.util
import os


def test_the_typed_user_script_runs_against_the_stand_in(capsys):
    path = os.path.join(os.path.dirname(__file__), "typecheck_user_script.py")
    spec = importlib.util.spec_from_file_location("typecheck_user_script", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.main() == 0
    captured = capsys.readouterr()
    assert "done" in captured.out  # atomic_output(None) wrote to stdout
    assert "INFO" in captured.err  # write_notification_line(..., sys.stderr)


def test_the_script_calls_every_public_session_method():
    """"Every public method" stays true: a method added to Session (or a mixin) and not
    pinned in the script fails here, before a user's checker meets it untyped."""
    import re

    import requests

    from dhis2maint import Session

    path = os.path.join(os.path.dirname(__file__), "typecheck_user_script.py")
    with open(path, encoding="utf-8") as f:
        text = f.read()
    ours = sorted(name for name in dir(Session)
                  if not name.startswith("_") and not hasattr(requests.Session, name))
    assert len(ours) > 50  # the mixins' methods are all there
    missing = [name for name in ours if not re.search(r"\b{}\b".format(name), text)]
    assert missing == []
