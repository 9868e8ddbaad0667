"""A local server speaking Alipay's open API gateway protocol for the tests: it checks every
request's RSA2 signature with the app's public key, signs every answer's ``<method>_response``
text with an Alipay key, sends trade results as signed form notifications, and serves the day's
trade bill as a zip of GBK CSV. Keys are made fresh for each test."""

from __future__ import annotations

import io
import json
import secrets
import threading
import zipfile
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, parse_qsl, urlencode, urlsplit

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.rails.local_gateway import LocalGateway, QuietHandler, new_key, serving
from usefirst.rails.alipay import PRODUCT_CODE, method_response_key, signing_text
from usefirst.rails.wechatpay import sign_message, verify_message, yuan_to_fen

APP_ID = "2021000117600000"
COMMON_PARAMS = {"app_id", "method", "format", "charset", "sign_type", "timestamp", "version"}
# biz_content of alipay.trade.pay for agreement deduction: these fields and no others.
PAY_FIELDS = {"out_trade_no", "total_amount", "subject", "product_code", "agreement_params"}
BILL_HEADER = (
    "支付宝交易号,商户订单号,业务类型,商品名称,创建时间,完成时间,门店编号,门店名称,操作员,"
    "终端号,对方账户,订单金额（元）,商家实收（元）,支付宝红包（元）,集分宝（元）,支付宝优惠（元）,"
    "商家优惠（元）,券核销金额（元）,券名称,商家红包消费金额（元）,卡消费金额（元）,"
    "退款批次号/请求号,服务费（元）,分润（元）,备注"
)


@dataclass
class AlipayKeys:
    app_key: rsa.RSAPrivateKey
    alipay_key: rsa.RSAPrivateKey

    @classmethod
    def make(cls) -> AlipayKeys:
        return cls(app_key=new_key(), alipay_key=new_key())

    def write(self, directory: Path) -> tuple[Path, Path]:
        app_key_file = directory / "app_private_key.pem"
        app_key_file.write_bytes(
            self.app_key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        alipay_public_file = directory / "alipay_public_key.pem"
        alipay_public_file.write_bytes(
            self.alipay_key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
        return app_key_file, alipay_public_file


@dataclass
class AlipayState:
    agreements: dict[str, str] = field(default_factory=dict)  # agreement_no -> status
    trades: dict[str, dict[str, str]] = field(default_factory=dict)
    bills: dict[date, list[dict[str, str]]] = field(default_factory=dict)
    notifications: list[bytes] = field(default_factory=list)
    calls: list[str] = field(default_factory=list)
    outcomes: list[str] = field(default_factory=list)  # "decline" or "succeed", in order
    refused_requests: int = 0
    business_on: date = date(2027, 3, 9)


class AlipayServer(LocalGateway):
    def __init__(self, keys: AlipayKeys) -> None:
        super().__init__(_Handler)
        self.keys = keys
        self.state = AlipayState()

    @property
    def gateway_url(self) -> str:
        return f"{self.url}/gateway.do"

    def answer(self, method: str, payload: dict[str, Any]) -> bytes:
        text = json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
        signature = sign_message(self.keys.alipay_key, text)
        return f'{{"{method_response_key(method)}":{text},"sign":"{signature}"}}'.encode()

    def notification(self, trade: dict[str, str]) -> bytes:
        params = {
            "notify_time": datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S"),
            "notify_type": "trade_status_sync",
            "notify_id": f"2027{secrets.token_hex(12)}",
            "charset": "utf-8",
            "version": "1.0",
            "app_id": APP_ID,
            "auth_app_id": APP_ID,
            "trade_no": trade["trade_no"],
            "out_trade_no": trade["out_trade_no"],
            "buyer_id": "2088102177846880",
            "trade_status": trade["trade_status"],
            "total_amount": trade["total_amount"],
            "receipt_amount": trade["total_amount"],
            "subject": trade["subject"],
            "gmt_payment": "2027-03-09 10:05:00",
            "sign_type": "RSA2",
        }
        params["sign"] = sign_message(
            self.keys.alipay_key, signing_text(params, leave_out=("sign", "sign_type"))
        )
        return urlencode(params).encode()

    def _notify(self, out_trade_no: str, notify_url: str) -> None:
        with self.lock:
            body = self.notification(dict(self.state.trades[out_trade_no]))
            self.state.notifications.append(body)
        self.post_notification(
            notify_url,
            body,
            {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"},
        )

    def bill_zip(self, on: date) -> bytes:
        rows = ["#支付宝业务明细查询", "#账号：[20881021778468800156]", BILL_HEADER]
        for trade in self.state.bills.get(on, []):
            fields = [""] * 25
            fields[0] = trade["trade_no"]
            fields[1] = trade["out_trade_no"]
            fields[2] = "交易"
            fields[3] = trade["subject"]
            fields[11] = trade["total_amount"]
            fields[12] = trade["total_amount"]
            rows.append(",".join(fields))
        rows.append("#-----------------------------------------业务明细列表结束")
        content = ("\r\n".join(rows) + "\r\n").encode("gbk")
        archive = io.BytesIO()
        with zipfile.ZipFile(archive, "w") as zipped:
            stamp = on.strftime("%Y%m%d")
            zipped.writestr(f"20881021778468800156_{stamp}_业务明细.csv", content)
            zipped.writestr(f"20881021778468800156_{stamp}_业务明细(汇总).csv", b"")
        return archive.getvalue()


class _Handler(QuietHandler):
    server_state: AlipayServer

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        if parts.path == "/bill":
            day = date.fromisoformat(parse_qs(parts.query)["day"][0])
            self._send(200, self.server_state.bill_zip(day), "application/zip")
        else:
            self._send(404, b"", "text/plain")

    def do_POST(self) -> None:
        server = self.server_state
        length = int(self.headers.get("Content-Length") or 0)
        params = dict(parse_qsl(self.rfile.read(length).decode(), keep_blank_values=True))
        if (
            urlsplit(self.path).path != "/gateway.do"
            or not set(params) >= COMMON_PARAMS
            or params["app_id"] != APP_ID
            or params["sign_type"] != "RSA2"
            or not verify_message(
                server.keys.app_key.public_key(), signing_text(params), params.get("sign", "")
            )
        ):
            with server.lock:
                server.state.refused_requests += 1
            error = {
                "code": "40002",
                "msg": "Invalid Arguments",
                "sub_code": "isv.invalid-signature",
            }
            self._send(200, json.dumps({"error_response": error}).encode(), "application/json")
            return
        method = params["method"]
        biz = json.loads(params.get("biz_content") or "{}")
        with server.lock:
            server.state.calls.append(method)
            answer = self._handle(method, biz, params)
        self._send(200, server.answer(method, answer), "application/json;charset=utf-8")

    def _handle(self, method: str, biz: dict[str, Any], params: dict[str, str]) -> dict[str, Any]:
        server = self.server_state
        state = server.state
        ok = {"code": "10000", "msg": "Success"}
        if method == "alipay.user.agreement.query":
            status = state.agreements.get(str(biz.get("agreement_no")))
            if status is None:
                return _refusal("USER_AGREEMENT_NOT_EXIST", "用户协议不存在")
            return {**ok, "agreement_no": biz["agreement_no"], "status": status}
        if method == "alipay.user.agreement.unsign":
            if str(biz.get("agreement_no")) not in state.agreements:
                return _refusal("USER_AGREEMENT_NOT_EXIST", "用户协议不存在")
            state.agreements[str(biz["agreement_no"])] = "STOP"
            return ok
        if method == "alipay.trade.pay":
            if set(biz) != PAY_FIELDS or biz["product_code"] != PRODUCT_CODE:
                return _refusal("ACQ.INVALID_PARAMETER", "参数无效", code="40002")
            agreement_no = str(biz["agreement_params"].get("agreement_no"))
            if state.agreements.get(agreement_no) != "NORMAL":
                return _refusal("ACQ.AGREEMENT_STATUS_NOT_NORMAL", "代扣协议状态非正常")
            trade = state.trades.get(biz["out_trade_no"])
            if trade is None and state.outcomes and state.outcomes.pop(0) == "decline":
                return _refusal("ACQ.BUYER_BALANCE_NOT_ENOUGH", "买家余额不足")
            if trade is None:
                trade = {
                    "trade_no": f"2027{secrets.token_hex(10)}",
                    "out_trade_no": biz["out_trade_no"],
                    "total_amount": biz["total_amount"],
                    "subject": biz["subject"],
                    "trade_status": "TRADE_SUCCESS",
                }
                state.trades[biz["out_trade_no"]] = trade
                state.bills.setdefault(state.business_on, []).append(trade)
                timer = threading.Timer(
                    0.2, server._notify, args=(biz["out_trade_no"], params["notify_url"])
                )
                timer.daemon = True
                server.timers.append(timer)
                timer.start()
            return {
                **ok,
                "trade_no": trade["trade_no"],
                "out_trade_no": trade["out_trade_no"],
                "total_amount": trade["total_amount"],
            }
        if method == "alipay.trade.query":
            trade = state.trades.get(str(biz.get("out_trade_no")))
            if trade is None:
                return _refusal("ACQ.TRADE_NOT_EXIST", "交易不存在")
            return {**ok, **trade}
        if method == "alipay.trade.refund":
            trade = state.trades.get(str(biz.get("out_trade_no")))
            if trade is None or yuan_to_fen(biz["refund_amount"]) > yuan_to_fen(
                trade["total_amount"]
            ):
                return _refusal("ACQ.REFUND_AMT_NOT_EQUAL_TOTAL", "退款金额超限")
            return {**ok, "trade_no": trade["trade_no"], "refund_fee": biz["refund_amount"]}
        if method == "alipay.data.dataservice.bill.downloadurl.query":
            day = date.fromisoformat(biz["bill_date"])
            return {**ok, "bill_download_url": f"{server.url}/bill?day={day}"}
        return _refusal("isv.invalid-method", "不存在的方法名", code="40002")


def _refusal(sub_code: str, sub_msg: str, *, code: str = "40004") -> dict[str, Any]:
    return {"code": code, "msg": "Business Failed", "sub_code": sub_code, "sub_msg": sub_msg}


def alipay_server(keys: AlipayKeys) -> AbstractContextManager[AlipayServer]:
    return serving(AlipayServer(keys))
