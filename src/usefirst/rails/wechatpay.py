"""WeChat Pay API v3 as a payment rail, for 委托代扣 (contract deduction, "papay").

Why 委托代扣 and not 支付分 (PayScore 先享后付): this engine already decides credit, keeps the
schedule and collects; PayScore would put WeChat's own credit decision and service-order
lifecycle in front of every order, duplicating both. Contract deduction is exactly the rail a BNPL
engine needs: the shopper signs a deduction contract once in WeChat (the mandate; the platform's
app names it by its ``out_contract_code``), and the merchant deducts each instalment against it,
retrying a failed deduction as it sees fit — the equivalent of PayScore's collection deduction
(催收扣款).

The protocol is spoken directly over HTTP (httpx + cryptography): the ``wechatpayv3`` SDK talks
only to WeChat's fixed gateway and downloads platform certificates itself, so it could not be
pointed at a local server speaking the same protocol in the tests, and it has no contract-
deduction call. What is implemented:

- every request signed ``WECHATPAY2-SHA256-RSA2048`` with the merchant's private key over
  ``METHOD\\nPATH?QUERY\\nTIMESTAMP\\nNONCE\\nBODY\\n``;
- every response and callback verified with the platform certificate named by
  ``Wechatpay-Serial`` over ``TIMESTAMP\\nNONCE\\nBODY\\n`` (RSA-SHA256), timestamps within 300 s;
- callback resources decrypted with AES-256-GCM under the APIv3 key;
- ``GET /v3/papay/sign/contracts/plan-id/{plan_id}/out-contract-code/{out_contract_code}``
  (查询签约协议: the mandate check, and before each deduction the contract id and whether it is
  still signed), ``POST …/out-contract-code/{out_contract_code}/terminate`` (解除签约协议, with
  ``contract_termination_remark``), ``POST /v3/papay/pay/transactions/apply`` (受理扣款:
  ``appid``, ``out_trade_no``, ``description``, ``contract_id``, ``transaction_notify_url``,
  ``amount``; accepted, then settled by a ``TRANSACTION.SUCCESS`` notification carrying the
  transaction's ``trade_state``), ``GET /v3/pay/transactions/out-trade-no/{out_trade_no}``,
  ``POST /v3/refund/domestic/refunds``, ``GET /v3/bill/tradebill`` and its download (checked
  against its SHA1).

A mandate is known by its ``out_contract_code`` (商户签约协议号), the code the platform's app
gave WeChat when the shopper signed under our plan (``plan_id``): WeChat's v3 contract calls are
addressed by plan and code, and the ``contract_id`` a deduction needs is read from the contract.

Our charge id is the deduction's ``out_trade_no``: WeChat deduplicates by it (the idempotency of
a resent deduction), and it is the id callbacks, queries and bills are matched by.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import hmac
import io
import json
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import httpx
from cryptography import x509
from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from usefirst.kit.clock import system_now
from usefirst.rails.provider import (
    CallbackRejected,
    ChargeRequest,
    ChargeStatus,
    Mandate,
    ProviderEvent,
    ProviderRefused,
    ProviderUnavailable,
    StatementLine,
    settled_event,
)

AUTH_SCHEME = "WECHATPAY2-SHA256-RSA2048"
TOLERANCE_SECONDS = 300
SUCCEEDED_STATES = ("SUCCESS", "REFUND")
FAILED_STATES = ("PAYERROR", "CLOSED", "REVOKED")


def sign_message(private_key: rsa.RSAPrivateKey, message: str) -> str:
    signature = private_key.sign(message.encode(), padding.PKCS1v15(), hashes.SHA256())
    return base64.b64encode(signature).decode()


def verify_message(public_key: rsa.RSAPublicKey, message: str, signature: str) -> bool:
    try:
        public_key.verify(
            base64.b64decode(signature), message.encode(), padding.PKCS1v15(), hashes.SHA256()
        )
    except (InvalidSignature, ValueError):
        return False
    return True


def certificate_serial(certificate: x509.Certificate) -> str:
    return format(certificate.serial_number, "X")


def authorization_header(
    *,
    mchid: str,
    serial_no: str,
    private_key: rsa.RSAPrivateKey,
    method: str,
    path_and_query: str,
    body: str,
    timestamp: str,
    nonce: str,
) -> str:
    message = f"{method}\n{path_and_query}\n{timestamp}\n{nonce}\n{body}\n"
    signature = sign_message(private_key, message)
    return (
        f'{AUTH_SCHEME} mchid="{mchid}",nonce_str="{nonce}",signature="{signature}",'
        f'timestamp="{timestamp}",serial_no="{serial_no}"'
    )


def yuan_to_fen(text: str) -> int:
    return int((Decimal(text.strip().lstrip("`") or "0") * 100).to_integral_exact())


@dataclass(frozen=True)
class WeChatPayConfig:
    mchid: str
    appid: str
    plan_id: str
    merchant_serial: str
    private_key: rsa.RSAPrivateKey
    apiv3_key: bytes  # 32 bytes
    # The platform certificates the engine trusts, by serial (hex, upper case).
    platform_keys: Mapping[str, rsa.RSAPublicKey]
    notify_url: str
    base_url: str = "https://api.mch.weixin.qq.com"

    @classmethod
    def from_files(
        cls,
        *,
        mchid: str,
        appid: str,
        plan_id: str,
        merchant_serial: str,
        private_key_file: Path,
        apiv3_key: str,
        platform_certificate_files: list[Path],
        notify_url: str,
        base_url: str,
    ) -> WeChatPayConfig:
        private_key = serialization.load_pem_private_key(
            private_key_file.read_bytes(), password=None
        )
        if not isinstance(private_key, rsa.RSAPrivateKey):
            raise ValueError("the WeChat Pay merchant key must be an RSA private key")
        keys: dict[str, rsa.RSAPublicKey] = {}
        for path in platform_certificate_files:
            certificate = x509.load_pem_x509_certificate(path.read_bytes())
            public_key = certificate.public_key()
            if not isinstance(public_key, rsa.RSAPublicKey):
                raise ValueError(f"{path}: not an RSA certificate")
            keys[certificate_serial(certificate)] = public_key
        if len(apiv3_key.encode()) != 32:
            raise ValueError("the WeChat Pay APIv3 key is 32 characters")
        return cls(
            mchid=mchid,
            appid=appid,
            plan_id=plan_id,
            merchant_serial=merchant_serial,
            private_key=private_key,
            apiv3_key=apiv3_key.encode(),
            platform_keys=keys,
            notify_url=notify_url,
            base_url=base_url.rstrip("/"),
        )


class WeChatPayProvider:
    name = "wechatpay"
    payment_method = "wechat"
    callback_acknowledgement: str | None = None

    def __init__(
        self,
        config: WeChatPayConfig,
        *,
        timeout_seconds: float = 10.0,
        wall_clock: Callable[[], datetime] = system_now,
    ) -> None:
        self.config = config
        self.timeout_seconds = timeout_seconds
        self.wall_clock = wall_clock

    # --- signed, verified HTTP ---------------------------------------------------------------

    def _verify(self, headers: Mapping[str, str], body: bytes) -> str | None:
        """Why the signed message cannot be believed, or None."""
        lowered = {key.lower(): value for key, value in headers.items()}
        timestamp = lowered.get("wechatpay-timestamp")
        nonce = lowered.get("wechatpay-nonce")
        signature = lowered.get("wechatpay-signature")
        serial = lowered.get("wechatpay-serial")
        if not (timestamp and nonce and signature and serial):
            return "signature_missing"
        public_key = self.config.platform_keys.get(serial.upper())
        if public_key is None:
            return "unknown_certificate"
        message = f"{timestamp}\n{nonce}\n{body.decode('utf-8', errors='replace')}\n"
        if not verify_message(public_key, message, signature):
            return "signature_invalid"
        try:
            sent_at = int(timestamp)
        except ValueError:
            return "timestamp_invalid"
        if abs(self.wall_clock().timestamp() - sent_at) > TOLERANCE_SECONDS:
            return "timestamp_stale"
        return None

    def _request(
        self, method: str, path: str, *, body: dict[str, Any] | None = None, raw: bool = False
    ) -> httpx.Response:
        text = json.dumps(body, separators=(",", ":"), ensure_ascii=False) if body else ""
        url = path if path.startswith("http") else f"{self.config.base_url}{path}"
        parts = urlsplit(url)
        path_and_query = parts.path + (f"?{parts.query}" if parts.query else "")
        headers = {
            "Authorization": authorization_header(
                mchid=self.config.mchid,
                serial_no=self.config.merchant_serial,
                private_key=self.config.private_key,
                method=method,
                path_and_query=path_and_query,
                body=text,
                timestamp=str(int(self.wall_clock().timestamp())),
                nonce=secrets.token_hex(16),
            ),
            "Accept": "application/json",
        }
        if text:
            headers["Content-Type"] = "application/json"
        try:
            response = httpx.request(
                method,
                url,
                content=text.encode() if text else None,
                headers=headers,
                timeout=self.timeout_seconds,
            )
        except httpx.HTTPError as error:
            raise ProviderUnavailable(f"wechatpay: {error}") from error
        if response.status_code >= 500:
            raise ProviderUnavailable(f"wechatpay answered {response.status_code}")
        if not raw:
            problem = self._verify(response.headers, response.content)
            if problem is not None:
                # An answer we cannot verify is no answer: try again later.
                raise ProviderUnavailable(f"wechatpay response not verified: {problem}")
        if response.status_code >= 400:
            try:
                payload = response.json()
            except ValueError:
                payload = {}
            raise ProviderRefused(str(payload.get("code", "refused")), response.text[:200])
        return response

    # --- the provider interface --------------------------------------------------------------

    def authorise_mandate(
        self,
        *,
        shopper_reference: str,
        idempotency_key: str,
        provider_mandate_id: str | None = None,
    ) -> Mandate:
        """The shopper signed a deduction contract in WeChat under our plan; check it is signed.
        ``provider_mandate_id`` is the contract's ``out_contract_code``."""
        if not provider_mandate_id:
            raise ProviderRefused(
                "contract_code_required",
                "give the out_contract_code the shopper's contract was signed with in WeChat",
            )
        contract = self._contract(provider_mandate_id)
        state = str(contract.get("contract_state", ""))
        return Mandate(provider_mandate_id=provider_mandate_id, is_active=state == "SIGNED")

    def _contract_path(self, out_contract_code: str) -> str:
        return (
            f"/v3/papay/sign/contracts/plan-id/{quote(self.config.plan_id, safe='')}"
            f"/out-contract-code/{quote(out_contract_code, safe='')}"
        )

    def _contract(self, out_contract_code: str) -> dict[str, Any]:
        response = self._request("GET", self._contract_path(out_contract_code))
        return dict(response.json())

    def revoke_mandate(self, *, mandate_id: str) -> Mandate:
        self._request(
            "POST",
            f"{self._contract_path(mandate_id)}/terminate",
            body={"contract_termination_remark": "revoked by the shopper"},
        )
        return Mandate(provider_mandate_id=mandate_id, is_active=False)

    def charge(self, request: ChargeRequest) -> ChargeStatus:
        contract = self._contract(request.mandate_id)
        if contract.get("contract_state") != "SIGNED" or not contract.get("contract_id"):
            raise ProviderRefused("contract_not_signed", "the deduction contract is not in force")
        self._request(
            "POST",
            "/v3/papay/pay/transactions/apply",
            body={
                "appid": self.config.appid,
                "out_trade_no": request.reference,
                "description": request.description[:127],
                "contract_id": str(contract["contract_id"]),
                "transaction_notify_url": self.config.notify_url,
                "amount": {"total": request.amount_minor, "currency": request.currency},
            },
        )
        return ChargeStatus(
            provider_charge_id=request.reference,
            reference=request.reference,
            state="processing",
            amount_minor=request.amount_minor,
            currency=request.currency,
        )

    def query(self, *, provider_charge_id: str) -> ChargeStatus:
        response = self._request(
            "GET",
            f"/v3/pay/transactions/out-trade-no/{provider_charge_id}?mchid={self.config.mchid}",
        )
        return _transaction_status(response.json())

    def refund(self, *, provider_charge_id: str, amount_minor: int, idempotency_key: str) -> str:
        charged = self.query(provider_charge_id=provider_charge_id)
        response = self._request(
            "POST",
            "/v3/refund/domestic/refunds",
            body={
                "out_trade_no": provider_charge_id,
                "out_refund_no": idempotency_key[:64],
                "amount": {
                    "refund": amount_minor,
                    "total": charged.amount_minor,
                    "currency": charged.currency,
                },
            },
        )
        return str(response.json()["refund_id"])

    def parse_callback(self, *, headers: Mapping[str, str], body: bytes) -> ProviderEvent:
        problem = self._verify(headers, body)
        if problem is not None:
            raise CallbackRejected(problem)
        try:
            notification = json.loads(body)
            resource = notification["resource"]
            if resource.get("algorithm") != "AEAD_AES_256_GCM":
                raise CallbackRejected("body_invalid", "unknown resource algorithm")
            plaintext = AESGCM(self.config.apiv3_key).decrypt(
                str(resource["nonce"]).encode(),
                base64.b64decode(resource["ciphertext"]),
                str(resource.get("associated_data", "")).encode() or None,
            )
            transaction = json.loads(plaintext)
            event_type = str(notification["event_type"])
        except InvalidTag:
            raise CallbackRejected("decryption_failed") from None
        except (KeyError, TypeError, ValueError):
            raise CallbackRejected("body_invalid") from None
        if event_type != "TRANSACTION.SUCCESS":
            raise CallbackRejected("unsupported_event", event_type)
        status = _transaction_status(transaction)
        if status.state == "processing":
            raise CallbackRejected("body_invalid", "a notification for an unsettled deduction")
        return settled_event(str(notification["id"]), status)

    def statement(self, *, on: date) -> list[StatementLine]:
        """The day's trade bill (all trades), downloaded and checked against its hash."""
        response = self._request(
            "GET", f"/v3/bill/tradebill?bill_date={on.isoformat()}&bill_type=ALL"
        )
        bill = response.json()
        download = self._request("GET", str(bill["download_url"]), raw=True)
        if str(bill.get("hash_type", "SHA1")).upper() != "SHA1" or not hmac.compare_digest(
            hashlib.sha1(download.content).hexdigest(),
            str(bill["hash_value"]).lower(),
        ):
            raise ProviderUnavailable("wechatpay bill does not match its hash")
        return parse_trade_bill(download.content.decode("utf-8-sig"))


def _transaction_status(transaction: Mapping[str, Any]) -> ChargeStatus:
    trade_state = str(transaction["trade_state"])
    state = (
        "succeeded"
        if trade_state in SUCCEEDED_STATES
        else "failed"
        if trade_state in FAILED_STATES
        else "processing"
    )
    amount = transaction["amount"]
    return ChargeStatus(
        provider_charge_id=str(transaction["out_trade_no"]),
        reference=str(transaction["out_trade_no"]),
        state=state,  # type: ignore[arg-type]
        amount_minor=int(amount["total"]),
        currency=str(amount.get("currency", "CNY")),
        failure_code=trade_state.lower() if state == "failed" else None,
    )


def parse_trade_bill(text: str) -> list[StatementLine]:
    """WeChat's trade bill: a header row, one row per trade (every field prefixed with a
    backtick), then a summary block starting at the row ``总交易单数``."""
    rows = list(csv.reader(io.StringIO(text)))
    if not rows:
        return []
    header = [name.strip() for name in rows[0]]
    index = {name: position for position, name in enumerate(header)}
    lines: list[StatementLine] = []
    for row in rows[1:]:
        if not row or row[0].strip().startswith("总"):
            break
        values = [value.strip().lstrip("`") for value in row]
        out_trade_no = values[index["商户订单号"]]
        state = values[index["交易状态"]]
        currency = values[index["货币种类"]] or "CNY"
        if state == "SUCCESS":
            lines.append(
                StatementLine(
                    provider_charge_id=out_trade_no,
                    reference=out_trade_no,
                    kind="charge",
                    amount_minor=yuan_to_fen(values[index["订单金额"]]),
                    currency=currency,
                )
            )
        elif state == "REFUND":
            lines.append(
                StatementLine(
                    provider_charge_id=out_trade_no,
                    reference=out_trade_no,
                    kind="refund",
                    amount_minor=yuan_to_fen(values[index["退款金额"]]),
                    currency=currency,
                )
            )
    return lines
