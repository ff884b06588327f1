"""A stand-in for the part of Stripe's API that Spark uses (Connect: accounts, account links,
transfers and their reversals, payouts, balance, events), served over real HTTP on 127.0.0.1 so
the real `stripe` SDK talks to it exactly as it talks to api.stripe.com.

Objects have the fields and shapes of Stripe's API (from stripe/openapi), errors the body
`{"error": {"type", "code", "message", "param"}}` with Stripe's status codes. Like Stripe it:
- wants `Authorization: Bearer sk_test_...` (401 otherwise);
- parses form bodies with the bracket syntax (`metadata[driver_id]=7`,
  `capabilities[transfers][requested]=true`) and refuses unknown parameters (400);
- honours `Idempotency-Key` on POST, per API key: the same key with the same request replays the
  first response with `Idempotent-Replayed: true`; the same key with other parameters or another
  endpoint is a 400 `idempotency_error`;
- answers 404 `resource_missing` for ids it does not know;
- scopes balances and payouts by the `Stripe-Account` header (a connected account).

Tests script failures through the handle (`StripeStandin.fault`): the next N calls to a method and
path answer 500, or are answered only after a delay (the request is carried out first: Stripe did
it, the client timed out), or have their connection reset. An injected 500 or reset stands for a
failure before Stripe's API ran, so nothing is done and no idempotent result is kept.

Test code only: lives under tests/, which the production image does not carry.
"""

from __future__ import annotations

import fnmatch
import json
import secrets
import socket
import string
import struct
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

DEFAULT_API_KEY = "sk_test_standin"
# What the platform can transfer out before a transfer is refused for insufficient funds.
DEFAULT_PLATFORM_BALANCE_CENTS = 100_000_000
ACCOUNT_LINK_TTL_SECONDS = 300  # Stripe's account links expire after a few minutes

# Top-level parameters each endpoint accepts (Stripe refuses any other with a 400).
_ACCOUNT_PARAMS = {
    "account_token",
    "business_profile",
    "business_type",
    "capabilities",
    "company",
    "controller",
    "country",
    "default_currency",
    "documents",
    "email",
    "expand",
    "external_account",
    "groups",
    "individual",
    "metadata",
    "settings",
    "tos_acceptance",
    "type",
}
_LIST_PARAMS = {"created", "ending_before", "expand", "limit", "starting_after"}
PARAMS = {
    "account_create": _ACCOUNT_PARAMS,
    "account_update": _ACCOUNT_PARAMS - {"type", "country", "controller"},
    "account_link_create": {"account", "collect", "collection_options", "expand", "refresh_url", "return_url", "type"},
    "transfer_create": {
        "amount",
        "currency",
        "description",
        "destination",
        "expand",
        "metadata",
        "source_transaction",
        "source_type",
        "transfer_group",
    },
    "transfer_update": {"description", "expand", "metadata"},
    "transfer_list": _LIST_PARAMS | {"destination", "transfer_group"},
    "reversal_create": {"amount", "description", "expand", "metadata", "refund_application_fee"},
    "payout_create": {
        "amount",
        "currency",
        "description",
        "destination",
        "expand",
        "metadata",
        "method",
        "payout_method",
        "source_type",
        "statement_descriptor",
    },
    "retrieve": {"expand"},
}


class StripeError(Exception):
    """An error answer, in Stripe's shape."""

    def __init__(self, status: int, type: str, message: str, code: str | None = None, param: str | None = None):
        super().__init__(message)
        self.status, self.type, self.message, self.code, self.param = status, type, message, code, param

    def body(self) -> dict:
        error: dict[str, Any] = {"type": self.type, "message": self.message}
        if self.code:
            error["code"] = self.code
            error["doc_url"] = f"https://stripe.com/docs/error-codes/{self.code.replace('_', '-')}"
        if self.param:
            error["param"] = self.param
        return {"error": error}


def invalid(message: str, *, param: str | None = None, code: str | None = None, status: int = 400) -> StripeError:
    return StripeError(status, "invalid_request_error", message, code=code, param=param)


def missing(kind: str, object_id: str, *, param: str = "id", status: int = 404) -> StripeError:
    return invalid(f"No such {kind}: '{object_id}'", param=param, code="resource_missing", status=status)


# --- form bodies -----------------------------------------------------------------------------


def parse_form(text: str) -> dict:
    """`a[b][c]=1&a[list][0]=x&a[list][1]=y` -> {"a": {"b": {"c": "1"}, "list": ["x", "y"]}}.

    Values stay strings, as on the wire; `a[]=x` appends. A key used both as a value and as a
    parent is a 400, as on Stripe."""
    root: dict = {}
    for key, value in parse_qsl(text, keep_blank_values=True, strict_parsing=False):
        head, bracket, rest = key.partition("[")
        if bracket and not rest.endswith("]"):
            raise invalid(f"Invalid parameter name: {key}", param=key)
        parts = [head] + (rest[:-1].split("][") if bracket else [])
        node = root
        for depth, part in enumerate(parts):
            if part == "":
                part = str(len(node))  # a[]=x: the next index
            if depth == len(parts) - 1:
                if isinstance(node.get(part), dict):
                    raise invalid(f"Invalid value for {key}: it is also a hash.", param=key)
                node[part] = value
            else:
                child = node.setdefault(part, {})
                if not isinstance(child, dict):
                    raise invalid(f"Invalid hash for {key}", param=key)
                node = child
    return _lists(root)


def _lists(node: Any) -> Any:
    if not isinstance(node, dict):
        return node
    if node and all(k.isdigit() for k in node):
        return [_lists(v) for _, v in sorted(node.items(), key=lambda kv: int(kv[0]))]
    return {k: _lists(v) for k, v in node.items()}


def _check_params(params: dict, allowed_for: str) -> None:
    for name in params:
        if name not in PARAMS[allowed_for]:
            raise invalid(f"Received unknown parameter: {name}", param=name, code="parameter_unknown")


def _require(params: dict, name: str) -> str:
    value = params.get(name)
    if value in (None, ""):
        raise invalid(f"Missing required param: {name}.", param=name, code="parameter_missing")
    if not isinstance(value, str):
        raise invalid(f"Invalid {name}: must be a string", param=name, code="parameter_invalid_string")
    return value


def _amount(params: dict, name: str = "amount", *, required: bool = True) -> int | None:
    raw = params.get(name)
    if raw is None and not required:
        return None
    text = _require(params, name)
    if not text.isdigit():
        raise invalid(f"Invalid integer: {raw}", param=name, code="parameter_invalid_integer")
    if int(text) < 1:
        raise invalid("This value must be greater than or equal to 1.", param=name, code="parameter_invalid_integer")
    return int(text)


def _bool(value: Any, param: str) -> bool:
    if value in ("true", True):
        return True
    if value in ("false", False):
        return False
    raise invalid(f"Invalid boolean: {value}", param=param)


def _metadata(current: dict, update: Any) -> dict:
    """Stripe merges metadata keys; an empty string removes a key, an empty metadata clears all."""
    if update in (None, ""):
        return {} if update == "" else dict(current)
    if not isinstance(update, dict):
        raise invalid("Invalid metadata: must be a hash", param="metadata")
    merged = dict(current)
    for key, value in update.items():
        if value == "":
            merged.pop(key, None)
        else:
            merged[key] = str(value)
    return merged


# --- state -----------------------------------------------------------------------------------


@dataclass
class Fault:
    method: str
    path: str  # fnmatch pattern: "/v1/accounts", "/v1/transfers/*"
    kind: str  # "error" (500), "delay" (answer after `seconds`), "reset" (connection reset)
    times: int
    seconds: float = 0.0


@dataclass
class Recorded:
    """One request as it reached the stand-in."""

    method: str
    path: str
    params: dict
    idempotency_key: str | None
    stripe_account: str | None
    status: int = 0
    replayed: bool = False


@dataclass
class _Stored:
    fingerprint: tuple
    status: int
    body: dict


@dataclass
class State:
    objects: dict[str, dict[str, dict]] = field(default_factory=dict)  # object type -> id -> object
    order: list[tuple[str, str]] = field(default_factory=list)
    balances: dict[str, int] = field(default_factory=dict)  # "platform" or acct id -> available cents
    idempotency: dict[tuple[str, str], _Stored] = field(default_factory=dict)


def _new_id(prefix: str) -> str:
    alphabet = string.ascii_letters + string.digits
    return f"{prefix}_{''.join(secrets.choice(alphabet) for _ in range(24))}"


def _list(data: list[dict], url: str, has_more: bool = False) -> dict:
    return {"object": "list", "data": data, "has_more": has_more, "url": url}


class Api:
    """The endpoints, on in-memory state. One lock: requests are carried out one at a time."""

    def __init__(self, *, base_url: str, platform_balance_cents: int):
        self.base_url = base_url
        self.lock = threading.RLock()
        self.state = State(balances={"platform": platform_balance_cents})
        self.now = lambda: int(time.time())

    # plumbing

    def _add(self, obj: dict) -> dict:
        self.state.objects.setdefault(obj["object"], {})[obj["id"]] = obj
        self.state.order.append((obj["object"], obj["id"]))
        return obj

    def _get(self, kind: str, object_id: str, *, param: str = "id", status: int = 404) -> dict:
        obj = self.state.objects.get(kind, {}).get(object_id)
        if obj is None:
            raise missing(kind.replace("_", " "), object_id, param=param, status=status)
        return obj

    def event(self, type: str, obj: dict, *, previous: dict | None = None, account: str | None = None) -> dict:
        data: dict[str, Any] = {"object": json.loads(json.dumps(obj))}
        if previous is not None:
            data["previous_attributes"] = previous
        event = {
            "id": _new_id("evt"),
            "object": "event",
            "api_version": "2025-01-27.acacia",
            "created": self.now(),
            "data": data,
            "livemode": False,
            "pending_webhooks": 0,
            "request": {"id": None, "idempotency_key": None},
            "type": type,
        }
        if account:
            event["account"] = account
        return self._add(event)

    def _balance_of(self, account: str | None) -> str:
        key = account or "platform"
        if account:
            self._get("account", account, param="Stripe-Account", status=403)
        self.state.balances.setdefault(key, 0)
        return key

    # routing

    def handle(self, method: str, path: str, params: dict, stripe_account: str | None) -> dict:
        parts = path.strip("/").split("/")
        if parts[0] != "v1" or len(parts) < 2:
            raise invalid(f"Unrecognized request URL ({method}: {path}).", status=404)
        kind, rest = parts[1], parts[2:]
        route = (method, kind, len(rest))
        if route == ("POST", "accounts", 0):
            return self.account_create(params)
        if route == ("GET", "accounts", 1):
            _check_params(params, "retrieve")
            return self._get("account", rest[0], param="account")
        if route == ("POST", "accounts", 1):
            return self.account_update(rest[0], params)
        if route == ("POST", "account_links", 0):
            return self.account_link_create(params)
        if route == ("POST", "transfers", 0):
            return self.transfer_create(params)
        if route == ("GET", "transfers", 0):
            return self.transfer_list(params)
        if route == ("GET", "transfers", 1):
            _check_params(params, "retrieve")
            return self._get("transfer", rest[0])
        if route == ("POST", "transfers", 1):
            return self.transfer_update(rest[0], params)
        if route[:2] == ("POST", "transfers") and len(rest) == 2 and rest[1] == "reversals":
            return self.reversal_create(rest[0], params)
        if route[:2] == ("GET", "transfers") and len(rest) == 2 and rest[1] == "reversals":
            return self._get("transfer", rest[0])["reversals"]
        if route == ("POST", "payouts", 0):
            return self.payout_create(params, stripe_account)
        if route == ("GET", "payouts", 1):
            _check_params(params, "retrieve")
            payout = self._get("payout", rest[0])
            if payout.get("_account") != stripe_account:
                raise missing("payout", rest[0])
            return payout
        if route == ("GET", "balance", 0):
            return self.balance_retrieve(stripe_account)
        if route == ("GET", "events", 1):
            _check_params(params, "retrieve")
            return self._get("event", rest[0])
        raise invalid(f"Unrecognized request URL ({method}: {path}).", status=404)

    # accounts

    def account_create(self, params: dict) -> dict:
        _check_params(params, "account_create")
        account_type = params.get("type", "custom" if "controller" not in params else "none")
        if account_type not in ("custom", "express", "standard", "none"):
            raise invalid("Invalid type: must be one of custom, express, or standard", param="type")
        capabilities = {}
        for name, wanted in (params.get("capabilities") or {}).items():
            if not isinstance(wanted, dict) or "requested" not in wanted:
                raise invalid(
                    f"Missing required param: capabilities[{name}][requested].",
                    param=f"capabilities[{name}][requested]",
                    code="parameter_missing",
                )
            if _bool(wanted["requested"], f"capabilities[{name}][requested]"):
                capabilities[name] = "inactive"  # until the driver finishes onboarding
        account_id = _new_id("acct")[:21]
        account = {
            "id": account_id,
            "object": "account",
            "type": account_type,
            "business_profile": {
                "mcc": None,
                "name": None,
                "product_description": None,
                "support_email": None,
                "support_phone": None,
                "support_url": None,
                "url": None,
            },
            "business_type": params.get("business_type"),
            "capabilities": capabilities,
            "charges_enabled": False,
            "controller": {"type": "application", "is_controller": True},
            "country": params.get("country", "US"),
            "created": self.now(),
            "default_currency": "usd",
            "details_submitted": False,
            "email": params.get("email"),
            "external_accounts": _list([], f"/v1/accounts/{account_id}/external_accounts"),
            "future_requirements": {
                "alternatives": [],
                "current_deadline": None,
                "currently_due": [],
                "disabled_reason": None,
                "errors": [],
                "eventually_due": [],
                "past_due": [],
                "pending_verification": [],
            },
            "metadata": _metadata({}, params.get("metadata")),
            "payouts_enabled": False,
            "requirements": {
                "alternatives": [],
                "current_deadline": None,
                "currently_due": ["external_account", "tos_acceptance.date", "tos_acceptance.ip"],
                "disabled_reason": "requirements.past_due",
                "errors": [],
                "eventually_due": ["external_account", "tos_acceptance.date", "tos_acceptance.ip"],
                "past_due": [],
                "pending_verification": [],
            },
            "settings": {
                "payouts": {
                    "debit_negative_balances": True,
                    "schedule": {"delay_days": 2, "interval": "daily"},
                    "statement_descriptor": None,
                }
            },
            "tos_acceptance": {"date": None, "ip": None, "user_agent": None},
        }
        self.state.balances[account_id] = 0
        return self._add(account)

    def account_update(self, account_id: str, params: dict) -> dict:
        _check_params(params, "account_update")
        account = self._get("account", account_id, param="account")
        previous: dict[str, Any] = {}
        for name in ("email", "business_type", "default_currency"):
            if name in params:
                previous[name] = account[name]
                account[name] = params[name] or None
        if "metadata" in params:
            previous["metadata"] = account["metadata"]
            account["metadata"] = _metadata(account["metadata"], params["metadata"])
        if previous:
            self.event("account.updated", account, previous=previous, account=account_id)
        return account

    def account_link_create(self, params: dict) -> dict:
        _check_params(params, "account_link_create")
        account = self._get("account", _require(params, "account"), param="account", status=400)
        link_type = _require(params, "type")
        if link_type not in ("account_onboarding", "account_update"):
            raise invalid("Invalid type: must be one of account_onboarding or account_update", param="type")
        if link_type == "account_onboarding":
            _require(params, "return_url")  # Stripe wants both for onboarding
            _require(params, "refresh_url")
        created = self.now()
        return {
            "object": "account_link",
            "created": created,
            "expires_at": created + ACCOUNT_LINK_TTL_SECONDS,
            "url": f"{self.base_url}/setup/s/{account['id']}/{secrets.token_urlsafe(12)}",
        }

    # transfers

    def transfer_create(self, params: dict) -> dict:
        _check_params(params, "transfer_create")
        amount = _amount(params)
        assert amount is not None
        currency = _require(params, "currency").lower()
        destination = self._get("account", _require(params, "destination"), param="destination", status=400)
        if "transfers" not in destination["capabilities"]:
            raise invalid(
                "Your destination account needs to have at least one of the following capabilities "
                "enabled: transfers, crypto_transfers, legacy_payments",
                param="destination",
                code="insufficient_capabilities_for_transfer",
            )
        if self.state.balances["platform"] < amount:
            raise invalid(
                "You have insufficient available funds in your Stripe account. Try adding funds "
                "directly to your available balance by creating Top-ups.",
                code="balance_insufficient",
            )
        self.state.balances["platform"] -= amount
        self.state.balances[destination["id"]] += amount
        transfer_id = _new_id("tr")
        transfer = {
            "id": transfer_id,
            "object": "transfer",
            "amount": amount,
            "amount_reversed": 0,
            "balance_transaction": _new_id("txn"),
            "created": self.now(),
            "currency": currency,
            "description": params.get("description"),
            "destination": destination["id"],
            "destination_payment": _new_id("py"),
            "livemode": False,
            "metadata": _metadata({}, params.get("metadata")),
            "reversals": _list([], f"/v1/transfers/{transfer_id}/reversals"),
            "reversed": False,
            "source_transaction": params.get("source_transaction"),
            "source_type": params.get("source_type", "card"),
            "transfer_group": params.get("transfer_group"),
        }
        self._add(transfer)
        self.event("transfer.created", transfer)
        return transfer

    def transfer_update(self, transfer_id: str, params: dict) -> dict:
        _check_params(params, "transfer_update")
        transfer = self._get("transfer", transfer_id)
        if "description" in params:
            transfer["description"] = params["description"] or None
        if "metadata" in params:
            transfer["metadata"] = _metadata(transfer["metadata"], params["metadata"])
        return transfer

    def transfer_list(self, params: dict) -> dict:
        _check_params(params, "transfer_list")
        limit = int(params.get("limit") or 10)
        if not 1 <= limit <= 100:
            raise invalid("This value must be less than or equal to 100.", param="limit")
        transfers = [self.state.objects["transfer"][i] for k, i in reversed(self.state.order) if k == "transfer"]
        for name in ("destination", "transfer_group"):
            if params.get(name):
                transfers = [t for t in transfers if t[name] == params[name]]
        if params.get("starting_after"):
            ids = [t["id"] for t in transfers]
            if params["starting_after"] not in ids:
                raise missing("transfer", params["starting_after"], param="starting_after", status=400)
            transfers = transfers[ids.index(params["starting_after"]) + 1 :]
        return _list(transfers[:limit], "/v1/transfers", has_more=len(transfers) > limit)

    def reversal_create(self, transfer_id: str, params: dict) -> dict:
        _check_params(params, "reversal_create")
        transfer = self._get("transfer", transfer_id)
        remaining = transfer["amount"] - transfer["amount_reversed"]
        amount = _amount(params, required=False) or remaining
        if amount > remaining:
            raise invalid(
                f"Amount ({amount}) is greater than the remaining amount of the transfer ({remaining}).", param="amount"
            )
        destination = transfer["destination"]
        if self.state.balances.get(destination, 0) < amount:
            raise invalid(
                "Insufficient funds in the destination account to reverse this transfer.", code="balance_insufficient"
            )
        self.state.balances[destination] -= amount
        self.state.balances["platform"] += amount
        reversal = {
            "id": _new_id("trr"),
            "object": "transfer_reversal",
            "amount": amount,
            "balance_transaction": _new_id("txn"),
            "created": self.now(),
            "currency": transfer["currency"],
            "destination_payment_refund": _new_id("pyr"),
            "metadata": _metadata({}, params.get("metadata")),
            "source_refund": None,
            "transfer": transfer_id,
        }
        self._add(reversal)
        transfer["amount_reversed"] += amount
        transfer["reversed"] = transfer["amount_reversed"] == transfer["amount"]
        transfer["reversals"]["data"].insert(0, reversal)
        self.event("transfer.reversed", transfer, previous={"amount_reversed": transfer["amount_reversed"] - amount})
        return reversal

    # payouts and balance

    def payout_create(self, params: dict, stripe_account: str | None) -> dict:
        _check_params(params, "payout_create")
        amount = _amount(params)
        assert amount is not None
        currency = _require(params, "currency").lower()
        method = params.get("method", "standard")
        if method not in ("standard", "instant"):
            raise invalid("Invalid method: must be one of standard or instant", param="method")
        key = self._balance_of(stripe_account)
        if self.state.balances[key] < amount:
            raise invalid(
                "You have insufficient funds in your Stripe account for this transfer.", code="balance_insufficient"
            )
        self.state.balances[key] -= amount
        now = self.now()
        payout = {
            "id": _new_id("po"),
            "object": "payout",
            "amount": amount,
            "application_fee": None,
            "application_fee_amount": None,
            "arrival_date": now + (0 if method == "instant" else 2 * 86400),
            "automatic": False,
            "balance_transaction": _new_id("txn"),
            "created": now,
            "currency": currency,
            "description": params.get("description"),
            "destination": params.get("destination") or _new_id("ba"),
            "failure_balance_transaction": None,
            "failure_code": None,
            "failure_message": None,
            "livemode": False,
            "metadata": _metadata({}, params.get("metadata")),
            "method": method,
            "original_payout": None,
            "reconciliation_status": "not_applicable",
            "reversed_by": None,
            "source_type": "card",
            "statement_descriptor": params.get("statement_descriptor"),
            "status": "pending",
            "type": "bank_account",
            "_account": stripe_account,
        }
        self._add(payout)
        self.event("payout.created", payout, account=stripe_account)
        return payout

    def payout_settle(self, payout_id: str, status: str, failure_code: str | None = None) -> dict:
        """What the bank does later: the payout is paid, or fails and its money comes back."""
        payout = self._get("payout", payout_id)
        previous = {"status": payout["status"]}
        payout["status"] = status
        if status == "failed":
            payout["failure_code"] = failure_code or "account_closed"
            payout["failure_message"] = "The bank account has been closed."
            self.state.balances[payout["_account"] or "platform"] += payout["amount"]
        return self.event(f"payout.{status}", payout, previous=previous, account=payout["_account"])

    def balance_retrieve(self, stripe_account: str | None) -> dict:
        available = self.state.balances[self._balance_of(stripe_account)]
        return {
            "object": "balance",
            "livemode": False,
            "available": [{"amount": available, "currency": "usd", "source_types": {"card": available}}],
            "connect_reserved": [{"amount": 0, "currency": "usd"}],
            "pending": [{"amount": 0, "currency": "usd", "source_types": {"card": 0}}],
        }


def _public(obj: Any) -> Any:
    """Drop the stand-in's own bookkeeping fields (a leading underscore) from an answer."""
    if isinstance(obj, dict):
        return {k: _public(v) for k, v in obj.items() if not k.startswith("_")}
    if isinstance(obj, list):
        return [_public(v) for v in obj]
    return obj


# --- HTTP ------------------------------------------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the SDK's requests session expects
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # quiet: tests read `requests` instead
        pass

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_DELETE(self) -> None:
        self._serve("DELETE")

    def _serve(self, method: str) -> None:
        standin = self.server.standin
        url = urlsplit(self.path)
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
        key = self.headers.get("Idempotency-Key") if method == "POST" else None
        account = self.headers.get("Stripe-Account")
        try:
            params = parse_form(body if method == "POST" else url.query)
        except StripeError as exc:
            params, parse_error = {}, exc
        else:
            parse_error = None
        record = Recorded(method, url.path, params, key, account)
        with standin.api.lock:
            standin.requests.append(record)
        fault = standin._take_fault(method, url.path)
        if fault is not None and fault.kind == "reset":
            self._reset()
            return
        if fault is not None and fault.kind == "error":
            status, answer = 500, StripeError(500, "api_error", "An unknown error occurred").body()
        else:
            status, answer, replayed = self._answer(method, url.path, params, parse_error, key, account)
            record.replayed = replayed
        record.status = status
        if fault is not None and fault.kind == "delay":
            # Carried out, but the answer comes after the client gave up: Stripe did it, we timed out.
            if standin._stopping.wait(fault.seconds):
                return
        self._send(status, answer, replayed=record.replayed)

    def _answer(self, method, path, params, parse_error, key, account) -> tuple[int, dict, bool]:
        standin = self.server.standin
        api_key = self._api_key()
        if api_key is None:
            return 401, self._auth_error().body(), False
        if parse_error is not None:
            return parse_error.status, parse_error.body(), False
        fingerprint = (method, path, json.dumps(params, sort_keys=True), account)
        with standin.api.lock:
            stored = standin.api.state.idempotency.get((api_key, key)) if key else None
            if stored is not None:
                if stored.fingerprint != fingerprint:
                    error = StripeError(
                        400,
                        "idempotency_error",
                        "Keys for idempotent requests can only be used with the same parameters they "
                        f"were first used with. Try using a key other than '{key}' if you meant to "
                        "execute a different request.",
                    )
                    return 400, error.body(), False
                return stored.status, stored.body, True
            try:
                status, answer = 200, _public(standin.api.handle(method, path, params, account))
            except StripeError as exc:
                status, answer = exc.status, exc.body()
            # Stripe keeps the result of every request its API ran, errors included; a request
            # refused before it ran (unknown parameter, missing parameter) is not kept.
            if key and not (status == 400 and answer["error"].get("code", "").startswith("parameter_")):
                standin.api.state.idempotency[(api_key, key)] = _Stored(fingerprint, status, answer)
        return status, answer, False

    def _api_key(self) -> str | None:
        scheme, _, token = self.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.startswith("sk_test_"):
            return None
        keys = self.server.standin.api_keys
        return token if keys is None or token in keys else None

    def _auth_error(self) -> StripeError:
        if not self.headers.get("Authorization"):
            return StripeError(
                401,
                "invalid_request_error",
                "You did not provide an API key. You need to provide your API key in the "
                "Authorization header, using Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY').",
            )
        return StripeError(401, "invalid_request_error", "Invalid API Key provided.")

    def _send(self, status: int, answer: dict, *, replayed: bool) -> None:
        payload = json.dumps(answer).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.send_header("Request-Id", f"req_{secrets.token_hex(7)}")
            if replayed:
                self.send_header("Idempotent-Replayed", "true")
            self.end_headers()
            self.wfile.write(payload)
        except OSError:  # the client hung up (it timed out): nothing to answer
            self.close_connection = True

    def _reset(self) -> None:
        # SO_LINGER 0: close() sends a TCP RST instead of a FIN, as a dropped connection does.
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close_connection = True
        self.connection.close()

    def finish(self) -> None:
        try:
            super().finish()
        except OSError:
            pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    standin: StripeStandin


class StripeStandin:
    """The handle: start it (a context manager), point the SDK at `url` with `api_key`, script
    faults, read what Stripe would show (`objects`, `balance`) and what reached it (`requests`).

        with StripeStandin() as standin:
            client = stripe.StripeClient(standin.api_key, base_addresses={"api": standin.url})
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        api_keys: set[str] | None = None,
        platform_balance_cents: int = DEFAULT_PLATFORM_BALANCE_CENTS,
    ):
        self.api_key = DEFAULT_API_KEY
        self.api_keys = api_keys  # None: any sk_test_ key is accepted
        self.requests: list[Recorded] = []
        self._faults: list[Fault] = []
        self._stopping = threading.Event()
        self._server = _Server((host, port), _Handler)
        self._server.standin = self
        self.url = f"http://{host}:{self._server.server_address[1]}"
        self.api = Api(base_url=self.url, platform_balance_cents=platform_balance_cents)
        self._thread = threading.Thread(target=self._server.serve_forever, name="stripe-standin", daemon=True)

    def start(self) -> StripeStandin:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()  # wakes delayed answers
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> StripeStandin:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # faults

    def fault(self, method: str, path: str, kind: str = "error", *, times: int = 1, seconds: float = 0.0) -> None:
        """The next `times` calls of `method` to `path` (an fnmatch pattern) fail: "error" answers
        500 without doing anything, "reset" drops the connection without doing anything, "delay"
        carries the request out and answers only after `seconds` (longer than the client's
        timeout: the client gives up, though Stripe did it)."""
        if kind not in ("error", "delay", "reset"):
            raise ValueError(f"Unknown fault kind {kind!r}")
        with self.api.lock:
            self._faults.append(Fault(method.upper(), path, kind, times, seconds))

    def clear_faults(self) -> None:
        with self.api.lock:
            self._faults.clear()

    def _take_fault(self, method: str, path: str) -> Fault | None:
        with self.api.lock:
            for fault in self._faults:
                if fault.method == method and fnmatch.fnmatchcase(path, fault.path):
                    fault.times -= 1
                    if fault.times <= 0:
                        self._faults.remove(fault)
                    return fault
        return None

    # what Stripe would show

    def objects(self, kind: str) -> list[dict]:
        """Every object of a kind ("account", "transfer", "payout", "event", ...), oldest first."""
        with self.api.lock:
            return [_public(self.api.state.objects[k][i]) for k, i in self.api.state.order if k == kind]

    def get(self, kind: str, object_id: str) -> dict:
        with self.api.lock:
            return _public(self.api._get(kind, object_id))

    def balance(self, account: str | None = None) -> int:
        """Available cents of the platform, or of a connected account."""
        with self.api.lock:
            return self.api.state.balances.get(account or "platform", 0)

    def account_onboard(self, account_id: str) -> dict:
        """What the driver does on Stripe's onboarding pages: bank account and details given,
        payouts enabled, nothing due. Returns the account.updated event."""
        with self.api.lock:
            account = self.api._get("account", account_id, param="account")
            previous = {"payouts_enabled": account["payouts_enabled"], "requirements": dict(account["requirements"])}
            account["payouts_enabled"] = account["charges_enabled"] = account["details_submitted"] = True
            account["capabilities"] = {name: "active" for name in account["capabilities"]}
            account["requirements"] = {**account["requirements"], "currently_due": [], "disabled_reason": None}
            return _public(self.api.event("account.updated", account, previous=previous, account=account_id))

    def payout_settle(self, payout_id: str, status: str = "paid", failure_code: str | None = None) -> dict:
        """The payout is paid (or failed, its money back in the balance); returns the event."""
        if status not in ("paid", "failed"):
            raise ValueError("A payout settles as paid or failed")
        with self.api.lock:
            return _public(self.api.payout_settle(payout_id, status, failure_code))

    def calls(self, method: str, path: str) -> list[Recorded]:
        with self.api.lock:
            return [r for r in self.requests if r.method == method and fnmatch.fnmatchcase(r.path, path)]
