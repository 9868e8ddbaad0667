"""A local server speaking WeChat Pay API v3 for the tests: it checks the merchant's request
signatures, signs every answer with a platform key whose certificate it made, sends deduction
results as signed notifications with AES-256-GCM encrypted resources, and serves trade bills.
Keys and the certificate are made fresh for each test."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
import time
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.x509.oid import NameOID

from tests.rails.local_gateway import LocalGateway, QuietHandler, new_key, serving
from usefirst.rails.wechatpay import AUTH_SCHEME, certificate_serial, sign_message, verify_message

MCHID = "1900000109"
APPID = "wxd678efh567hg6787"
PLAN_ID = "12535"
CONTRACT_PATH = f"/v3/papay/sign/contracts/plan-id/{PLAN_ID}/out-contract-code/"
# 受理扣款's body as WeChat documents it: these fields and no others.
APPLY_REQUIRED = {
    "appid",
    "out_trade_no",
    "description",
    "contract_id",
    "transaction_notify_url",
    "amount",
}
APPLY_OPTIONAL = {"goods_tag", "attach"}


def contract_id_of(out_contract_code: str) -> str:
    """The contract id WeChat gives the contract signed with this code."""
    return "2020" + hashlib.sha1(out_contract_code.encode()).hexdigest()[:16]


APIV3_KEY = "a" * 16 + "B" * 16
BILL_HEADER = (
    "交易时间,公众账号ID,商户号,特约商户号,设备号,微信订单号,商户订单号,用户标识,交易类型,"
    "交易状态,付款银行,货币种类,应结订单金额,代金券金额,微信退款单号,商户退款单号,退款金额,"
    "充值券退款金额,退款类型,退款状态,商品名称,商户数据包,手续费,费率,订单金额,申请退款金额,费率备注"
)


def self_signed(key: rsa.RSAPrivateKey, name: str) -> x509.Certificate:
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.now(UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=365))
        .sign(key, hashes.SHA256())
    )


@dataclass
class WeChatKeys:
    merchant_key: rsa.RSAPrivateKey
    merchant_certificate: x509.Certificate
    platform_key: rsa.RSAPrivateKey
    platform_certificate: x509.Certificate

    @classmethod
    def make(cls) -> WeChatKeys:
        merchant, platform = new_key(), new_key()
        return cls(
            merchant_key=merchant,
            merchant_certificate=self_signed(merchant, "merchant"),
            platform_key=platform,
            platform_certificate=self_signed(platform, "Tenpay.com Root CA"),
        )

    @property
    def merchant_serial(self) -> str:
        return certificate_serial(self.merchant_certificate)

    @property
    def platform_serial(self) -> str:
        return certificate_serial(self.platform_certificate)

    def write(self, directory: Path) -> tuple[Path, Path]:
        key_file = directory / "apiclient_key.pem"
        key_file.write_bytes(
            self.merchant_key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        certificate_file = directory / "wechatpay_platform.pem"
        certificate_file.write_bytes(
            self.platform_certificate.public_bytes(serialization.Encoding.PEM)
        )
        return key_file, certificate_file


@dataclass
class WeChatState:
    contracts: dict[str, str] = field(default_factory=dict)  # out_contract_code -> state
    transactions: dict[str, dict[str, Any]] = field(default_factory=dict)
    outcomes: list[str] = field(default_factory=list)
    bills: dict[date, list[dict[str, Any]]] = field(default_factory=dict)
    notifications: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    refused_requests: int = 0
    business_on: date = date(2027, 3, 9)


class WeChatPayServer(LocalGateway):
    def __init__(self, keys: WeChatKeys) -> None:
        super().__init__(_Handler)
        self.keys = keys
        self.state = WeChatState()

    def signed_headers(self, body: bytes, *, timestamp: int | None = None) -> dict[str, str]:
        stamp = str(timestamp if timestamp is not None else int(time.time()))
        nonce = secrets.token_hex(16)
        message = f"{stamp}\n{nonce}\n{body.decode()}\n"
        return {
            "Content-Type": "application/json",
            "Wechatpay-Timestamp": stamp,
            "Wechatpay-Nonce": nonce,
            "Wechatpay-Signature": sign_message(self.keys.platform_key, message),
            "Wechatpay-Serial": self.keys.platform_serial,
        }

    def notification(self, transaction: dict[str, Any]) -> tuple[dict[str, str], bytes]:
        nonce = secrets.token_hex(6)
        associated = "transaction"
        ciphertext = AESGCM(APIV3_KEY.encode()).encrypt(
            nonce.encode(), json.dumps(transaction).encode(), associated.encode()
        )
        body = json.dumps(
            {
                "id": f"EV-{secrets.token_hex(8)}",
                "create_time": datetime.now(UTC).isoformat(),
                "resource_type": "encrypt-resource",
                "event_type": "TRANSACTION.SUCCESS",
                "summary": "扣款结果",
                "resource": {
                    "original_type": "transaction",
                    "algorithm": "AEAD_AES_256_GCM",
                    "ciphertext": base64.b64encode(ciphertext).decode(),
                    "associated_data": associated,
                    "nonce": nonce,
                },
            }
        ).encode()
        return self.signed_headers(body), body

    def _decide(self, out_trade_no: str, outcome: str, notify_url: str) -> None:
        with self.lock:
            transaction = self.state.transactions[out_trade_no]
            transaction["trade_state"] = "SUCCESS" if outcome != "decline" else "PAYERROR"
            transaction["transaction_id"] = f"4200{secrets.token_hex(8)}"
            if transaction["trade_state"] == "SUCCESS":
                self.state.bills.setdefault(self.state.business_on, []).append(dict(transaction))
            headers, body = self.notification(dict(transaction))
            self.state.notifications.append((headers, body))
        if outcome == "lose_callback":
            return
        self.post_notification(notify_url, body, headers)

    def bill_csv(self, on: date) -> bytes:
        rows = [BILL_HEADER]
        for item in self.state.bills.get(on, []):
            amount = Decimal(item["amount"]["total"]) / 100
            fields = [""] * 27
            fields[0] = f"{on} 10:00:00"
            fields[1] = APPID
            fields[2] = MCHID
            fields[5] = item["transaction_id"]
            fields[6] = item["out_trade_no"]
            fields[8] = "PAPAY"
            fields[9] = "SUCCESS"
            fields[11] = item["amount"]["currency"]
            fields[12] = f"{amount:.2f}"
            fields[16] = "0.00"
            fields[24] = f"{amount:.2f}"
            rows.append(",".join(f"`{value}" for value in fields))
        rows.append(
            "总交易单数,应结订单总金额,退款总金额,充值券退款总金额,手续费总金额,订单总金额,申请退款总金额"
        )
        rows.append(f"`{len(self.state.bills.get(on, []))},`0,`0,`0,`0,`0,`0")
        return ("\n".join(rows) + "\n").encode()


class _Handler(QuietHandler):
    server_state: WeChatPayServer

    def _reply(self, status: int, payload: Any | None, *, raw: bytes | None = None) -> None:
        body = (
            raw if raw is not None else (b"" if payload is None else json.dumps(payload).encode())
        )
        headers = (
            {"Content-Type": "text/plain"}
            if raw is not None
            else self.server_state.signed_headers(body)
        )
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _authorised(self, body: bytes) -> bool:
        header = self.headers.get("Authorization", "")
        if not header.startswith(AUTH_SCHEME + " "):
            return self._refuse()
        fields = dict(part.split("=", 1) for part in header[len(AUTH_SCHEME) + 1 :].split(","))
        values = {key.strip(): value.strip('"') for key, value in fields.items()}
        keys = self.server_state.keys
        if values.get("mchid") != MCHID or values.get("serial_no") != keys.merchant_serial:
            return self._refuse()
        message = (
            f"{self.command}\n{self.path}\n{values['timestamp']}\n{values['nonce_str']}\n"
            f"{body.decode()}\n"
        )
        if not verify_message(keys.merchant_key.public_key(), message, values["signature"]):
            return self._refuse()
        return True

    def _refuse(self) -> bool:
        with self.server_state.lock:
            self.server_state.state.refused_requests += 1
        self._reply(401, {"code": "SIGN_ERROR", "message": "签名错误"})
        return False

    def do_GET(self) -> None:
        if not self._authorised(b""):
            return
        server = self.server_state
        parts = urlsplit(self.path)
        query = parse_qs(parts.query)
        segments = parts.path.split("/")
        if parts.path.startswith(CONTRACT_PATH):
            code = unquote(parts.path[len(CONTRACT_PATH) :])
            state = server.state.contracts.get(code)
            if state is None:
                self._reply(404, {"code": "RESOURCE_NOT_EXISTS", "message": "签约不存在"})
            else:
                self._reply(
                    200,
                    {
                        "mchid": MCHID,
                        "appid": APPID,
                        "plan_id": int(PLAN_ID),
                        "out_contract_code": code,
                        "contract_id": contract_id_of(code),
                        "contract_state": state,
                    },
                )
        elif parts.path.startswith("/v3/pay/transactions/out-trade-no/"):
            transaction = server.state.transactions.get(segments[5])
            if transaction is None:
                self._reply(404, {"code": "ORDER_NOT_EXIST", "message": "订单不存在"})
            else:
                self._reply(200, transaction)
        elif parts.path == "/v3/bill/tradebill":
            on = date.fromisoformat(query["bill_date"][0])
            content = server.bill_csv(on)
            self._reply(
                200,
                {
                    "download_url": f"{server.url}/v3/billdownload/file?day={on}",
                    "hash_type": "SHA1",
                    "hash_value": hashlib.sha1(content).hexdigest(),
                },
            )
        elif parts.path == "/v3/billdownload/file":
            self._reply(200, None, raw=server.bill_csv(date.fromisoformat(query["day"][0])))
        else:
            self._reply(404, {"code": "NOT_FOUND"})

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        if not self._authorised(body):
            return
        server = self.server_state
        payload = json.loads(body or b"{}")
        path = urlsplit(self.path).path
        if path == "/v3/papay/pay/transactions/apply":
            if not APPLY_REQUIRED <= set(payload) <= APPLY_REQUIRED | APPLY_OPTIONAL:
                self._reply(400, {"code": "PARAM_ERROR", "message": "参数错误"})
                return
            signed = {
                contract_id_of(code)
                for code, state in server.state.contracts.items()
                if state == "SIGNED"
            }
            with server.lock:
                if payload["contract_id"] not in signed:
                    self._reply(403, {"code": "CONTRACT_ERROR", "message": "签约状态异常"})
                    return
                known = server.state.transactions.get(payload["out_trade_no"])
                if known is None:
                    server.state.transactions[payload["out_trade_no"]] = {
                        "appid": APPID,
                        "mchid": MCHID,
                        "out_trade_no": payload["out_trade_no"],
                        "trade_state": "ACCEPT",
                        "amount": dict(payload["amount"]),
                    }
                    outcome = server.state.outcomes.pop(0) if server.state.outcomes else "succeed"
                    timer = threading.Timer(
                        0.2,
                        server._decide,
                        args=(
                            payload["out_trade_no"],
                            outcome,
                            payload["transaction_notify_url"],
                        ),
                    )
                    timer.daemon = True
                    server.timers.append(timer)
                    timer.start()
            self._reply(200, {"out_trade_no": payload["out_trade_no"], "amount": payload["amount"]})
        elif path.startswith(CONTRACT_PATH) and path.endswith("/terminate"):
            code = unquote(path[len(CONTRACT_PATH) : -len("/terminate")])
            if (
                set(payload) != {"contract_termination_remark"}
                or code not in server.state.contracts
            ):
                self._reply(400, {"code": "PARAM_ERROR", "message": "参数错误"})
                return
            with server.lock:
                server.state.contracts[code] = "TERMINATED"
            self._reply(204, None)
        elif path == "/v3/refund/domestic/refunds":
            self._reply(200, {"refund_id": f"5030{secrets.token_hex(6)}", "status": "PROCESSING"})
        else:
            self._reply(404, {"code": "NOT_FOUND"})


def wechatpay_server(keys: WeChatKeys) -> AbstractContextManager[WeChatPayServer]:
    return serving(WeChatPayServer(keys))
