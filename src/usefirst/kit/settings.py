"""Settings from the environment (prefix ``USEFIRST_``), validated by pydantic-settings."""

from __future__ import annotations

import base64
import json
import os
from datetime import time
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from usefirst.kit.crypto import FieldCipher, new_key


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="USEFIRST_", extra="ignore")

    database_url: str = "sqlite:///usefirst.db"
    sandbox: bool = False
    time_zone: str = "Asia/Shanghai"

    # PII keys. ``encryption_keys`` is "id:base64key,id2:base64key"; when absent, a key file is
    # created beside the database on first use (fine for the embedded demo, not for production).
    encryption_keys: str | None = None
    active_key_id: str | None = None
    blind_index_key: str | None = None
    keys_file: Path = Path("usefirst-keys.json")

    platform_webhook_url: str | None = None
    platform_webhook_secret: str | None = None
    webhook_timeout_seconds: float = 5.0
    webhook_max_attempts: int = 12
    # Webhook destinations given through the API may not be loopback, link-local, private or
    # metadata addresses (checked when set and at every delivery) unless this allows them, for
    # local development and tests only. The platform's own webhook URL above is the operator's
    # setting and is not checked.
    webhook_allow_private_destinations: bool = False

    # Credit policy (cold start).
    currency: str = "CNY"
    starting_limit_minor: int = Field(default=100_000, ge=0)
    limit_cap_minor: int = Field(default=500_000, ge=0)
    limit_growth_bps: int = Field(default=2_000, ge=0)
    # "scorecard" scores enrolments that carry marketplace application facts and sets the starting
    # limit by score band (enrolments without them get the cold-start limit); "cold_start" never
    # scores. The scorecard is the shipped artefact unless credit_scorecard_file names another;
    # credit_score_bands is "NAME:MIN_SCORE:LIMIT_MINOR,..." (a score below the lowest declines).
    credit_policy: Literal["scorecard", "cold_start"] = "scorecard"
    credit_scorecard_file: Path | None = None
    credit_score_bands: str | None = None

    # Repayment terms.
    pay_within_days: int = Field(default=7, ge=0)
    auto_confirm_days: int = Field(default=10, ge=1)
    instalment_fee_bps_per_month: int = Field(default=50, ge=0)
    apr_cap_bps: int = Field(default=2_400, ge=0)

    # Collections.
    grace_days: int = Field(default=0, ge=0, le=30)
    late_fee_bps_per_day: int = Field(default=5, ge=0, le=100)
    late_fee_cap_bps_of_principal: int = Field(default=2_500, ge=0, le=10_000)
    dunning_ladder_file: Path | None = None
    # JSON overrides of the reminder templates: {template_id: {language: {channel: {...}}}}.
    templates_file: Path | None = None
    quiet_hours_start: time = time(21, 0)
    quiet_hours_end: time = time(8, 0)
    max_contacts_per_day: int = Field(default=3, ge=1)
    max_calls_per_day: int = Field(default=1, ge=0)
    how_to_pay: str = "在商城 App 的“先用后付”页面还款 / pay in the marketplace app"
    lender_name: str = "usefirst"
    bureau_reporter_id: str = "USEFIRST"
    bureau_reporter_address: str = "BEIJING CN"

    # Settlement. A rolling reserve withholds this share of each payout's net sales and releases it
    # after settlement_reserve_days. Off by default for merchants in good standing (the 60 bps fee
    # is the price they agreed to; silently keeping 5 % of every payout is a commercial term, not
    # an engine default); merchants on watch carry settlement_reserve_on_watch_bps, so the money
    # that may have to be clawed back is still in hand when a refund or dispute arrives.
    settlement_reserve_bps: int = Field(default=0, ge=0, le=10_000)
    settlement_reserve_on_watch_bps: int = Field(default=1_000, ge=0, le=10_000)
    settlement_reserve_days: int = Field(default=60, ge=1, le=365)

    # Complaints: an operator must answer within this many days of filing (SLA).
    complaint_response_days: int = Field(default=15, ge=1, le=90)

    # Channels: SMS through an HTTP gateway (else written to a local log), email over SMTP.
    sms_gateway_url: str | None = None
    sms_gateway_token: str | None = None
    sms_log_path: Path = Path("usefirst-sms.jsonl")
    smtp_host: str | None = None
    smtp_port: int = 25
    smtp_sender: str | None = None
    smtp_username: str | None = None
    smtp_password: str | None = None
    smtp_starttls: bool = False

    # Risk: the rule file (default: the rules shipped in usefirst/risk/rules.toml) and the
    # one-time codes of step-up checkouts.
    risk_rules_file: Path | None = None
    # The rules and the dunning ladder saved in the console (or with `usefirst config publish`)
    # are versioned in the database and replace the files above; each process looks for a newer
    # version at most this often.
    config_refresh_seconds: float = Field(default=5.0, ge=0, le=300)
    step_up_code_ttl_seconds: int = Field(default=600, ge=60, le=3600)
    step_up_max_attempts: int = Field(default=5, ge=1, le=10)

    # Disputes: the respondent answers within respond days, an operator decides within decide
    # days (both counted from filing). Evidence files are stored by content hash under this
    # directory, never under a name a caller chose.
    dispute_respond_days: int = Field(default=7, ge=1, le=60)
    dispute_decide_days: int = Field(default=15, ge=2, le=120)
    dispute_evidence_dir: Path = Path("usefirst-evidence")
    dispute_evidence_max_bytes: int = Field(default=10 * 1024 * 1024, ge=1, le=100 * 1024 * 1024)

    # Console sign-in. Cookies are marked Secure whenever the request arrived over TLS (directly
    # or as told by a trusted proxy's X-Forwarded-Proto); force it with console_secure_cookies.
    console_session_idle_minutes: int = Field(default=30, ge=1)
    console_session_max_hours: int = Field(default=8, ge=1)
    console_max_failed_attempts: int = Field(default=5, ge=1)
    console_lockout_minutes: int = Field(default=15, ge=1)
    console_secure_cookies: bool = False

    # Operations. Logs are JSON lines unless written to a terminal ("auto"); /metrics answers
    # only requests that carry this bearer token (in sandbox mode without a token it is open, so
    # the demo can be scraped; in production without one it is off).
    log_format: Literal["auto", "json", "console"] = "auto"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    metrics_token: str | None = None
    # The book's figures on /metrics (overdue amounts, backlog, …) are read at most this often.
    metrics_book_refresh_seconds: float = Field(default=30.0, ge=0, le=3600)

    # Payment rails (issue 18): which provider auto-debits shoppers with a mandate ("none": the
    # engine only records payments the platform reports). "sandbox" is the local sandbox rail
    # (`usefirst rails sandbox-provider`, the default of ./dev run); "wechatpay" is WeChat Pay,
    # "alipay" Alipay.
    payment_provider: Literal["none", "sandbox", "wechatpay", "alipay"] = "none"
    sandbox_rail_url: str = "http://127.0.0.1:8765"
    sandbox_rail_secret: str | None = None
    payment_provider_timeout_seconds: float = Field(default=10.0, gt=0, le=60)
    # When (local time) and how often a declined charge is tried again (rails/retry.toml).
    auto_debit_retry_file: Path | None = None
    # A charge with no callback this long after it was sent is asked about (a query).
    auto_debit_query_after_seconds: int = Field(default=3600, ge=1, le=7 * 86400)
    # WeChat Pay API v3 (委托代扣, contract deduction): merchant id, app id, the merchant key
    # (PEM) and its certificate's serial, the APIv3 key (32 characters), the platform
    # certificates trusted for responses and callbacks (comma-separated PEM files), and the public
    # URL of POST /v1/rails/wechatpay/callbacks.
    wechatpay_mchid: str | None = None
    wechatpay_appid: str | None = None
    # The 委托代扣 template (plan) the shoppers' contracts are signed under.
    wechatpay_plan_id: str | None = None
    wechatpay_merchant_serial: str | None = None
    wechatpay_private_key_file: Path | None = None
    wechatpay_apiv3_key: str | None = None
    wechatpay_platform_certificate_files: str | None = None
    wechatpay_notify_url: str | None = None
    wechatpay_base_url: str = "https://api.mch.weixin.qq.com"
    # Alipay open API (商户代扣, agreement deduction): the app id, the app private key (PEM), the
    # Alipay public key (PEM) responses and notifications are verified with, the public URL of
    # POST /v1/rails/alipay/callbacks, and the gateway.
    alipay_app_id: str | None = None
    alipay_app_private_key_file: Path | None = None
    alipay_public_key_file: Path | None = None
    alipay_notify_url: str | None = None
    alipay_gateway_url: str = "https://openapi.alipay.com/gateway.do"
    # Shopper options: a due date may be moved by at most this many days, once per order.
    extension_max_days: int = Field(default=10, ge=1, le=60)
    # Hardship: an operator answers a request within this many days (the Australian BNPL code's
    # 21); a plan re-spreads what is owed over at most this many months, fee-free; a missed plan
    # payment ends the plan this many days after the shopper was told; an offered settlement for
    # less stays open this many days.
    hardship_answer_days: int = Field(default=21, ge=1, le=90)
    hardship_plan_max_months: int = Field(default=12, ge=1, le=60)
    hardship_plan_notice_days: int = Field(default=14, ge=1, le=60)
    hardship_settlement_valid_days: int = Field(default=30, ge=1, le=180)

    # Request bodies, refused with 413 before they are read past this size: JSON bodies of the
    # API (the largest real one, a 200-item checkout, is under 100 KB) and console forms (the
    # largest, a configuration file of up to 200,000 characters, pasted or uploaded).
    # Evidence uploads have dispute_evidence_max_bytes plus room for the multipart framing.
    http_max_json_body_bytes: int = Field(default=1024 * 1024, ge=1024, le=64 * 1024 * 1024)
    http_max_form_body_bytes: int = Field(default=1024 * 1024, ge=1024, le=16 * 1024 * 1024)

    # Serving. A process trusts an API key it has authenticated for this many seconds before it
    # asks the database again (0: every call asks); revoking a key forgets it in the revoking
    # process at once.
    credential_cache_seconds: float = Field(default=5.0, ge=0, le=60)
    # Failed authentication per client address (``limits`` notation; counted in
    # ``auth_throttle_storage``: "database" is one count for every process on a PostgreSQL
    # database (its auth_throttle_hits table) and a count in memory on SQLite; or a limits
    # storage URI: memory:// per process, redis:// or memcached:// shared). Past a limit the
    # answer is 429 with Retry-After. A sign-in fails for one email from one address at most
    # console_max_failed_attempts times per console_lockout_minutes; the real owner signing in
    # from elsewhere is not locked out.
    auth_throttle_storage: str = "database"
    api_key_failures_per_address: str = "30/5 minutes"
    sign_in_failures_per_address: str = "20/15 minutes"


@lru_cache
def get_settings() -> Settings:
    return Settings()


def _decode_key(text: str) -> bytes:
    return base64.urlsafe_b64decode(text.encode("ascii") + b"=" * (-len(text) % 4))


def _encode_key(key: bytes) -> str:
    return base64.urlsafe_b64encode(key).decode("ascii")


def load_field_cipher(settings: Settings) -> FieldCipher:
    if settings.encryption_keys:
        keys = {}
        for item in settings.encryption_keys.split(","):
            key_id, _, encoded = item.strip().partition(":")
            keys[key_id] = _decode_key(encoded)
        if not settings.blind_index_key:
            raise ValueError("USEFIRST_BLIND_INDEX_KEY is required with USEFIRST_ENCRYPTION_KEYS")
        return FieldCipher(
            keys=keys,
            active_key_id=settings.active_key_id or next(iter(keys)),
            blind_index_key=_decode_key(settings.blind_index_key),
        )
    path = settings.keys_file
    if not path.exists():
        material = {
            "active_key_id": "k1",
            "keys": {"k1": _encode_key(new_key())},
            "blind_index_key": _encode_key(new_key()),
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            json.dump(material, handle, indent=2)
    material = json.loads(path.read_text())
    return FieldCipher(
        keys={key_id: _decode_key(value) for key_id, value in material["keys"].items()},
        active_key_id=material["active_key_id"],
        blind_index_key=_decode_key(material["blind_index_key"]),
    )
