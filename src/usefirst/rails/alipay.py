"""Alipay open API as a payment rail, for agreement-based deduction (商户代扣).

The shopper signs a deduction agreement once in Alipay (``alipay.user.agreement.page.sign``, a
page the platform's app opens: :meth:`AlipayProvider.sign_page_url`); Alipay names it by its
``agreement_no``, which is the mandate id. Each instalment is then charged with
``alipay.trade.pay`` carrying ``agreement_params.agreement_no`` and ``product_code``
``GENERAL_WITHHOLDING``; its result is confirmed by Alipay's asynchronous notification
(``trade_status_sync``) or by ``alipay.trade.query``, never by the answer to the request.

The protocol is spoken directly over HTTP (httpx + cryptography): the Alipay SDKs sign and send
the same form, but read responses by re-serialising JSON rather than verifying the exact signed
text, and the project already has everything needed. What is implemented:

- every request is a form POST to the gateway with the common parameters (``app_id``,
  ``method``, ``format``, ``charset``, ``sign_type`` RSA2, ``timestamp`` in China time,
  ``version``, ``notify_url``, ``biz_content``) signed SHA256withRSA with the app private key
  over the parameters sorted by name, ``key=value`` joined by ``&``, empty values and ``sign``
  left out;
- every response verified with the Alipay public key over the exact text of its
  ``<method>_response`` object (``code`` 10000 is success; 40004 a business refusal named by
  ``sub_code``; 20000 and server errors are "try again");
- notifications (form posts) verified over every parameter but ``sign`` and ``sign_type``, and
  matched by ``out_trade_no`` (our charge id) with ``notify_id`` as the event id;
- ``alipay.user.agreement.query`` (the mandate check: ``status`` ``NORMAL``),
  ``alipay.user.agreement.unsign``, ``alipay.trade.query``, ``alipay.trade.refund`` (with
  ``out_request_no`` = the idempotency key), and the day's trade bill from
  ``alipay.data.dataservice.bill.downloadurl.query`` (a zip of GBK CSV files; the 业务明细 file
  is read).
"""

from __future__ import annotations

import csv
import io
import json
import re
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode
from zoneinfo import ZoneInfo

import httpx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

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
from usefirst.rails.wechatpay import sign_message, verify_message, yuan_to_fen

CHINA_TIME = ZoneInfo("Asia/Shanghai")
PRODUCT_CODE = "GENERAL_WITHHOLDING"
PERSONAL_PRODUCT_CODE = "GENERAL_WITHHOLDING_P"
SUCCESS_CODE = "10000"
UNAVAILABLE_CODES = ("20000", "20001")
SUCCEEDED_STATES = ("TRADE_SUCCESS", "TRADE_FINISHED")
FAILED_STATES = ("TRADE_CLOSED",)
BILL_DETAIL_SUFFIX = "业务明细.csv"
# trade.pay's answers that are the shopper's decline (tried again on the retry schedule), not a
# refusal of the request itself.
DECLINE_SUB_CODES = (
    "ACQ.BUYER_BALANCE_NOT_ENOUGH",
    "ACQ.BUYER_BANKCARD_BALANCE_NOT_ENOUGH",
    "ACQ.PAYMENT_REQUEST_HAS_RISK",
    "ACQ.BUYER_PAYMENT_AMOUNT_DAY_LIMIT_ERROR",
    "ACQ.BUYER_PAYMENT_AMOUNT_MONTH_LIMIT_ERROR",
    "ACQ.PAYMENT_FAIL",
)


def signing_text(params: Mapping[str, str], *, leave_out: tuple[str, ...] = ("sign",)) -> str:
    """Alipay's string to sign: parameters sorted by name, empty ones and ``leave_out`` dropped."""
    return "&".join(
        f"{name}={params[name]}"
        for name in sorted(params)
        if name not in leave_out and params[name] != ""
    )


def signed_response_text(body: str, key: str) -> str | None:
    """The exact text of the ``key`` object in a gateway response: what Alipay signed."""
    match = re.search(rf'"{re.escape(key)}"\s*:\s*', body)
    if match is None:
        return None
    try:
        _, end = json.JSONDecoder().raw_decode(body, match.end())
    except ValueError:
        return None
    return body[match.end() : end]


def yuan(amount_minor: int) -> str:
    return f"{Decimal(amount_minor) / 100:.2f}"


def method_response_key(method: str) -> str:
    return method.replace(".", "_") + "_response"


@dataclass(frozen=True)
class AlipayConfig:
    app_id: str
    app_private_key: rsa.RSAPrivateKey
    alipay_public_key: rsa.RSAPublicKey
    notify_url: str
    gateway_url: str = "https://openapi.alipay.com/gateway.do"

    @classmethod
    def from_files(
        cls,
        *,
        app_id: str,
        app_private_key_file: Path,
        alipay_public_key_file: Path,
        notify_url: str,
        gateway_url: str,
    ) -> AlipayConfig:
        private_key = serialization.load_pem_private_key(
            app_private_key_file.read_bytes(), password=None
        )
        if not isinstance(private_key, rsa.RSAPrivateKey):
            raise ValueError("the Alipay app private key must be an RSA private key")
        public_key = serialization.load_pem_public_key(alipay_public_key_file.read_bytes())
        if not isinstance(public_key, rsa.RSAPublicKey):
            raise ValueError("the Alipay public key must be an RSA public key")
        return cls(
            app_id=app_id,
            app_private_key=private_key,
            alipay_public_key=public_key,
            notify_url=notify_url,
            gateway_url=gateway_url,
        )


class AlipayProvider:
    name = "alipay"
    payment_method = "alipay"
    callback_acknowledgement: str | None = "success"

    def __init__(
        self,
        config: AlipayConfig,
        *,
        timeout_seconds: float = 10.0,
        wall_clock: Callable[[], datetime] = system_now,
    ) -> None:
        self.config = config
        self.timeout_seconds = timeout_seconds
        self.wall_clock = wall_clock

    # --- signed, verified HTTP ---------------------------------------------------------------

    def signed_params(
        self, method: str, biz_content: Mapping[str, Any], *, notify_url: str | None = None
    ) -> dict[str, str]:
        params = {
            "app_id": self.config.app_id,
            "method": method,
            "format": "JSON",
            "charset": "utf-8",
            "sign_type": "RSA2",
            "timestamp": self.wall_clock().astimezone(CHINA_TIME).strftime("%Y-%m-%d %H:%M:%S"),
            "version": "1.0",
            "biz_content": json.dumps(biz_content, separators=(",", ":"), ensure_ascii=False),
        }
        if notify_url:
            params["notify_url"] = notify_url
        params["sign"] = sign_message(self.config.app_private_key, signing_text(params))
        return params

    def _call(
        self, method: str, biz_content: Mapping[str, Any], *, notify: bool = False
    ) -> dict[str, Any]:
        """The verified ``<method>_response`` object of a successful call."""
        try:
            response = httpx.post(
                self.config.gateway_url,
                data=self.signed_params(
                    method, biz_content, notify_url=self.config.notify_url if notify else None
                ),
                timeout=self.timeout_seconds,
            )
        except httpx.HTTPError as error:
            raise ProviderUnavailable(f"alipay: {error}") from error
        if response.status_code >= 500:
            raise ProviderUnavailable(f"alipay answered {response.status_code}")
        text = response.content.decode("utf-8", errors="replace")
        key = method_response_key(method)
        signed = signed_response_text(text, key)
        if signed is None:
            # Alipay answers a request it could not authenticate with an unsigned error_response.
            error_text = signed_response_text(text, "error_response")
            detail = json.loads(error_text) if error_text else {}
            raise ProviderRefused(
                str(detail.get("sub_code") or detail.get("code") or "refused"), text[:200]
            )
        try:
            signature = str(json.loads(text).get("sign", ""))
        except ValueError:
            signature = ""
        if not signature or not verify_message(self.config.alipay_public_key, signed, signature):
            # An answer we cannot verify is no answer: try again later.
            raise ProviderUnavailable("alipay response not verified")
        payload = dict(json.loads(signed))
        code = str(payload.get("code", ""))
        if code in UNAVAILABLE_CODES:
            raise ProviderUnavailable(f"alipay answered {code}: {payload.get('sub_code')}")
        if code != SUCCESS_CODE:
            raise ProviderRefused(
                str(payload.get("sub_code") or code), str(payload.get("sub_msg", ""))
            )
        return payload

    # --- the provider interface --------------------------------------------------------------

    def sign_page_url(self, *, external_agreement_no: str, sign_notify_url: str) -> str:
        """Where the platform's app sends the shopper to sign the deduction agreement
        (``alipay.user.agreement.page.sign``): a GET of the signed parameters on the gateway."""
        params = self.signed_params(
            "alipay.user.agreement.page.sign",
            {
                "personal_product_code": PERSONAL_PRODUCT_CODE,
                "product_code": PRODUCT_CODE,
                "sign_scene": "DEFAULT|DEFAULT",
                "external_agreement_no": external_agreement_no,
                "access_params": {"channel": "ALIPAYAPP"},
            },
            notify_url=sign_notify_url,
        )
        return f"{self.config.gateway_url}?{urlencode(params)}"

    def authorise_mandate(
        self,
        *,
        shopper_reference: str,
        idempotency_key: str,
        provider_mandate_id: str | None = None,
    ) -> Mandate:
        """The shopper signed a deduction agreement in Alipay; check it is in force.
        ``provider_mandate_id`` is the agreement's ``agreement_no``."""
        if not provider_mandate_id:
            raise ProviderRefused(
                "agreement_no_required",
                "give the agreement_no of the agreement the shopper signed in Alipay",
            )
        agreement = self._call(
            "alipay.user.agreement.query",
            {"personal_product_code": PERSONAL_PRODUCT_CODE, "agreement_no": provider_mandate_id},
        )
        return Mandate(
            provider_mandate_id=provider_mandate_id,
            is_active=agreement.get("status") == "NORMAL",
        )

    def revoke_mandate(self, *, mandate_id: str) -> Mandate:
        self._call("alipay.user.agreement.unsign", {"agreement_no": mandate_id})
        return Mandate(provider_mandate_id=mandate_id, is_active=False)

    def charge(self, request: ChargeRequest) -> ChargeStatus:
        if request.currency != "CNY":
            raise ProviderRefused("currency_not_supported", "Alipay deducts in CNY")
        declined: str | None = None
        try:
            self._call(
                "alipay.trade.pay",
                {
                    "out_trade_no": request.reference,
                    "total_amount": yuan(request.amount_minor),
                    "subject": request.description[:256],
                    "product_code": PRODUCT_CODE,
                    "agreement_params": {"agreement_no": request.mandate_id},
                },
                notify=True,
            )
        except ProviderRefused as refused:
            if refused.code not in DECLINE_SUB_CODES:
                raise
            declined = refused.code.lower()
        # A success in the answer is not the confirmation: the notification or a query is.
        return ChargeStatus(
            provider_charge_id=request.reference,
            reference=request.reference,
            state="failed" if declined else "processing",
            amount_minor=request.amount_minor,
            currency=request.currency,
            failure_code=declined,
        )

    def query(self, *, provider_charge_id: str) -> ChargeStatus:
        trade = self._call("alipay.trade.query", {"out_trade_no": provider_charge_id})
        return _trade_status(trade)

    def refund(self, *, provider_charge_id: str, amount_minor: int, idempotency_key: str) -> str:
        out_request_no = idempotency_key[:64]
        self._call(
            "alipay.trade.refund",
            {
                "out_trade_no": provider_charge_id,
                "refund_amount": yuan(amount_minor),
                "out_request_no": out_request_no,
            },
        )
        return out_request_no

    def parse_callback(self, *, headers: Mapping[str, str], body: bytes) -> ProviderEvent:
        try:
            params = dict(
                parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=True)
            )
        except (UnicodeDecodeError, ValueError):
            raise CallbackRejected("body_invalid") from None
        signature = params.get("sign", "")
        if not signature:
            raise CallbackRejected("signature_missing")
        if params.get("sign_type", "RSA2") != "RSA2":
            raise CallbackRejected("signature_invalid", "only RSA2 is accepted")
        text = signing_text(params, leave_out=("sign", "sign_type"))
        if not verify_message(self.config.alipay_public_key, text, signature):
            raise CallbackRejected("signature_invalid")
        if params.get("app_id") != self.config.app_id:
            raise CallbackRejected("body_invalid", "a notification for another app")
        if params.get("notify_type") != "trade_status_sync":
            raise CallbackRejected("unsupported_event", params.get("notify_type", ""))
        try:
            status = _trade_status(params)
            event_id = params["notify_id"]
        except (KeyError, ValueError, ArithmeticError):
            raise CallbackRejected("body_invalid") from None
        if status.state == "processing":
            raise CallbackRejected("body_invalid", "a notification for an unsettled trade")
        return settled_event(event_id, status)

    def statement(self, *, on: date) -> list[StatementLine]:
        """The day's trade bill: its download URL asked for, the zip fetched, 业务明细 read."""
        answer = self._call(
            "alipay.data.dataservice.bill.downloadurl.query",
            {"bill_type": "trade", "bill_date": on.isoformat()},
        )
        try:
            download = httpx.get(str(answer["bill_download_url"]), timeout=self.timeout_seconds)
        except httpx.HTTPError as error:
            raise ProviderUnavailable(f"alipay bill: {error}") from error
        if download.status_code != 200:
            raise ProviderUnavailable(f"alipay bill answered {download.status_code}")
        try:
            archive = zipfile.ZipFile(io.BytesIO(download.content))
        except zipfile.BadZipFile:
            raise ProviderUnavailable("alipay bill is not a zip archive") from None
        details = [name for name in archive.namelist() if name.endswith(BILL_DETAIL_SUFFIX)]
        if len(details) != 1:
            raise ProviderUnavailable("alipay bill has no single 业务明细 file")
        return parse_trade_bill(archive.read(details[0]).decode("gbk"))


def _trade_status(trade: Mapping[str, Any]) -> ChargeStatus:
    trade_status = str(trade["trade_status"])
    state = (
        "succeeded"
        if trade_status in SUCCEEDED_STATES
        else "failed"
        if trade_status in FAILED_STATES
        else "processing"
    )
    return ChargeStatus(
        provider_charge_id=str(trade["out_trade_no"]),
        reference=str(trade["out_trade_no"]),
        state=state,  # type: ignore[arg-type]
        amount_minor=yuan_to_fen(str(trade["total_amount"])),
        currency=str(trade.get("trans_currency") or "CNY"),
        failure_code=trade_status.lower() if state == "failed" else None,
    )


def parse_trade_bill(text: str) -> list[StatementLine]:
    """Alipay's 业务明细: ``#`` comment lines around a header row and one row per trade or
    refund (业务类型 交易 / 退款; refund amounts are negative)."""
    rows = [row for row in csv.reader(io.StringIO(text)) if row and not row[0].startswith("#")]
    if not rows:
        return []
    index = {name.strip(): position for position, name in enumerate(rows[0])}
    lines: list[StatementLine] = []
    for row in rows[1:]:
        values = [value.strip() for value in row]
        if len(values) < len(index):
            continue
        kind = values[index["业务类型"]]
        if kind not in ("交易", "退款"):
            continue
        out_trade_no = values[index["商户订单号"]]
        lines.append(
            StatementLine(
                provider_charge_id=out_trade_no,
                reference=out_trade_no,
                kind="charge" if kind == "交易" else "refund",
                amount_minor=abs(yuan_to_fen(values[index["订单金额（元）"]])),
                currency="CNY",
            )
        )
    return lines
