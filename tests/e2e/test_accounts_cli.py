"""``runback keys`` and ``runback orgs`` as real processes, against a real ``runback serve``.

One data directory and one server serve the module: the accounts are made before the server
starts (as an operator would), and the server must honour every later change at once,
without a restart. Tests that change accounts make their own keys, so none depends on
another's order.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from uuid import UUID

import httpx
import pytest

from support.process import ServeProcess, cli

_ECHO_RUNS = "/v1/models/runback/echo/runs"
_PREFIX_LENGTH = len("rb_") + 8  # the part of a key that 'keys list' may show again


@dataclass(frozen=True)
class Accounts:
    """What the module's commands made, before any server ran on the data directory."""

    data_dir: Path
    acme_created: subprocess.CompletedProcess[str]
    first_key_created: subprocess.CompletedProcess[str]
    default_key: str  # member of default only
    both_key: str  # member of acme (its default) and default
    org_names: list[str]  # as 'orgs list' orders them
    org_ids: dict[str, str]  # name -> id, from 'orgs list'


def _ok(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    result = cli(*args, "--data-dir", str(data_dir))
    assert result.returncode == 0, result.stderr
    return result


def _assert_one_line_error(
    result: subprocess.CompletedProcess[str], *says: str, status: int = 1
) -> None:
    assert result.returncode == status, result
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1, result.stderr
    assert "Traceback" not in result.stderr
    for words in says:
        assert words in result.stderr


def _auth(key: str, organization_id: str | None = None) -> dict[str, str]:
    headers = {"Authorization": f"Bearer {key}"}
    if organization_id is not None:
        headers["X-Organization-Id"] = organization_id
    return headers


def _parse_keys(listed: str) -> dict[str, list[str]]:
    """'keys list' output, each line split into its fields and found by the key's shown prefix."""
    fields = [re.split(r"\s{2,}", line) for line in listed.splitlines()]
    return {line[1]: line for line in fields}


def _shown(key: str) -> str:
    return key[:_PREFIX_LENGTH] + "..."


@pytest.fixture(scope="module")
def accounts(tmp_path_factory: pytest.TempPathFactory) -> Accounts:
    data_dir = tmp_path_factory.mktemp("accounts") / "data"
    # 'orgs create' first on a fresh directory: default and acme are made by one command.
    acme = _ok(data_dir, "orgs", "create", "acme")
    first = _ok(data_dir, "keys", "create")
    both = _ok(
        data_dir, "keys", "create", "--org", "acme", "--org", "default", "--label", "two orgs"
    )
    listed = _ok(data_dir, "orgs", "list").stdout.splitlines()
    org_ids = [line.split()[0] for line in listed]
    org_names = [line.split()[1] for line in listed]
    return Accounts(
        data_dir=data_dir,
        acme_created=acme,
        first_key_created=first,
        default_key=first.stdout.strip(),
        both_key=both.stdout.strip(),
        org_names=org_names,
        org_ids=dict(zip(org_names, org_ids, strict=True)),
    )


@pytest.fixture(scope="module")
def server(accounts: Accounts) -> Iterator[ServeProcess]:
    with ServeProcess(accounts.data_dir) as process:
        yield process


@pytest.fixture(scope="module")
def http(server: ServeProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=10) as client:
        yield client


def _create_run(http: httpx.Client, headers: dict[str, str]) -> str:
    response = http.post(_ECHO_RUNS, json={"input": {}}, headers=headers)
    assert response.status_code == 201, response.text
    run_id: str = response.json()["id"]
    return run_id


# --- keys create and orgs, before and after the server starts ---


def test_keys_create_before_any_serve_prints_only_the_key(accounts: Accounts) -> None:
    created = accounts.first_key_created

    assert created.stdout.count("\n") == 1
    assert created.stdout.startswith("rb_")
    assert created.stdout.strip() == accounts.default_key
    assert " " not in accounts.default_key
    assert created.stderr == ""


def test_a_key_made_before_serve_works_against_the_server_started_after(
    accounts: Accounts, http: httpx.Client
) -> None:
    response = http.get("/v1/runs", headers=_auth(accounts.default_key))

    assert response.status_code == 200, response.text


def test_orgs_create_prints_the_new_organization_id(accounts: Accounts) -> None:
    created = accounts.acme_created

    assert created.stdout.count("\n") == 1
    assert UUID(created.stdout.strip()) == UUID(accounts.org_ids["acme"])


def test_orgs_list_shows_default_first_then_acme(accounts: Accounts) -> None:
    assert accounts.org_names == ["default", "acme"]
    for org_id in accounts.org_ids.values():
        UUID(org_id)


def test_creating_an_organization_twice_is_one_line_on_stderr(accounts: Accounts) -> None:
    again = cli("orgs", "create", "acme", "--data-dir", str(accounts.data_dir))

    _assert_one_line_error(again, "acme", "exists")


def test_keys_create_for_an_unknown_organization_is_one_line_naming_it(
    accounts: Accounts,
) -> None:
    made = cli("keys", "create", "--org", "nope", "--data-dir", str(accounts.data_dir))

    _assert_one_line_error(made, "nope", status=4)  # not found


def test_keys_create_naming_an_organization_twice_is_never_a_traceback(
    accounts: Accounts,
) -> None:
    made = cli(
        "keys", "create", "--org", "acme", "--org", "acme", "--data-dir", str(accounts.data_dir)
    )

    # Either the repeat is forgiven (a key) or refused (one line); never a traceback.
    traceback = "Traceback" in made.stderr
    assert not traceback, "\n".join(made.stderr.splitlines()[-3:])
    assert made.returncode in (0, 1)
    assert made.stderr.count("\n") == (made.returncode == 1)


# --- organizations: what a key sees and acts for ---


def test_a_run_made_for_a_keys_first_organization_is_invisible_to_other_organizations(
    accounts: Accounts, http: httpx.Client
) -> None:
    run_id = _create_run(http, _auth(accounts.both_key))  # acts for acme, its first

    seen_by = {
        "default-only key": http.get(f"/v1/runs/{run_id}", headers=_auth(accounts.default_key)),
        "its own key": http.get(f"/v1/runs/{run_id}", headers=_auth(accounts.both_key)),
        "its own key, for acme": http.get(
            f"/v1/runs/{run_id}", headers=_auth(accounts.both_key, accounts.org_ids["acme"])
        ),
        "its own key, for default": http.get(
            f"/v1/runs/{run_id}", headers=_auth(accounts.both_key, accounts.org_ids["default"])
        ),
    }

    assert {who: answer.status_code for who, answer in seen_by.items()} == {
        "default-only key": 404,
        "its own key": 200,
        "its own key, for acme": 200,
        "its own key, for default": 404,
    }


def test_x_organization_id_makes_a_key_act_for_another_of_its_organizations(
    accounts: Accounts, http: httpx.Client
) -> None:
    run_id = _create_run(http, _auth(accounts.both_key, accounts.org_ids["default"]))

    seen = http.get(f"/v1/runs/{run_id}", headers=_auth(accounts.default_key))

    assert seen.status_code == 200, seen.text


def test_a_key_cannot_act_for_an_organization_it_is_not_a_member_of(
    accounts: Accounts, http: httpx.Client
) -> None:
    response = http.get("/v1/runs", headers=_auth(accounts.default_key, accounts.org_ids["acme"]))

    assert response.status_code == 403, response.text


# --- keys list and keys revoke ---


def test_keys_list_shows_id_prefix_state_orgs_and_label_but_never_the_key(
    accounts: Accounts,
) -> None:
    gone = _ok(accounts.data_dir, "keys", "create", "--label", "gone").stdout.strip()
    _ok(accounts.data_dir, "keys", "revoke", gone[:_PREFIX_LENGTH])

    listed = _ok(accounts.data_dir, "keys", "list").stdout

    expected = {
        accounts.default_key: ("active", "orgs default", []),  # no label: the line ends
        accounts.both_key: ("active", "orgs acme,default", ["two orgs"]),
        gone: (r"revoked \d{4}-\d\d-\d\d \d\d:\d\d:\d\d", "orgs default", ["gone"]),
    }
    for key, (state, orgs, label) in expected.items():
        assert key not in listed
        key_id, shown, shown_state, created, *rest = _parse_keys(listed)[_shown(key)]
        UUID(key_id)
        assert shown == _shown(key)
        assert re.fullmatch(state, shown_state), shown_state
        assert created.startswith("created ")
        assert rest == [orgs, *label]


@pytest.fixture
def doomed_key(accounts: Accounts) -> str:
    return _ok(accounts.data_dir, "keys", "create", "--label", "doomed").stdout.strip()


@pytest.mark.parametrize(
    "named_by",
    [
        "prefix",  # what 'keys list' shows, without its '...'
        "id",  # the key's id, from 'keys list'
    ],
)
def test_a_revoked_key_answers_401_from_the_running_servers_next_request(
    accounts: Accounts, http: httpx.Client, doomed_key: str, named_by: str
) -> None:
    assert http.get("/v1/runs", headers=_auth(doomed_key)).status_code == 200
    prefix = doomed_key[:_PREFIX_LENGTH]
    name = (
        prefix
        if named_by == "prefix"
        else _parse_keys(_ok(accounts.data_dir, "keys", "list").stdout)[_shown(doomed_key)][0]
    )

    revoked = _ok(accounts.data_dir, "keys", "revoke", name)

    assert revoked.stdout.startswith("revoked ")
    assert f"({prefix}...)" in revoked.stdout
    assert http.get("/v1/runs", headers=_auth(doomed_key)).status_code == 401
    assert http.get("/v1/runs", headers=_auth(accounts.default_key)).status_code == 200
    assert http.get("/v1/runs", headers=_auth(accounts.both_key)).status_code == 200


def test_revoking_an_unknown_key_is_one_line_on_stderr(accounts: Accounts) -> None:
    revoked = cli("keys", "revoke", "rb_unknown", "--data-dir", str(accounts.data_dir))

    _assert_one_line_error(revoked, "rb_unknown", status=4)  # not found
