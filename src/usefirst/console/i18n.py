"""The console's words in Chinese (default) and English."""

from __future__ import annotations

LANGUAGES = ("zh", "en")
DEFAULT_LANGUAGE = "zh"

MESSAGES: dict[str, dict[str, str]] = {
    "console": {"zh": "先用后付 运营控制台", "en": "usefirst console"},
    "sign_in": {"zh": "登录", "en": "Sign in"},
    "sign_out": {"zh": "退出", "en": "Sign out"},
    "email": {"zh": "邮箱", "en": "Email"},
    "password": {"zh": "密码", "en": "Password"},
    "totp_code": {"zh": "动态验证码（6 位）", "en": "Authenticator code (6 digits)"},
    "verify": {"zh": "验证", "en": "Verify"},
    "totp_prompt": {
        "zh": "请输入身份验证器 App 中显示的 6 位验证码。",
        "en": "Enter the 6-digit code shown in your authenticator app.",
    },
    "totp_enrol_title": {"zh": "设置两步验证", "en": "Set up two-step verification"},
    "totp_enrol_prompt": {
        "zh": "用身份验证器 App 扫描二维码（或手动输入密钥），然后输入显示的验证码完成设置。",
        "en": "Scan the QR code with an authenticator app (or type the key), then enter the code "
        "it shows to finish.",
    },
    "totp_secret": {"zh": "密钥", "en": "Key"},
    "wrong_credentials": {"zh": "邮箱或密码不正确。", "en": "Email or password is wrong."},
    "wrong_code": {"zh": "验证码不正确或已使用。", "en": "The code is wrong or already used."},
    "locked": {
        "zh": "错误次数过多，账户已暂时锁定，请于 {until} 后再试。",
        "en": "Too many wrong attempts: the account is locked until {until}.",
    },
    "throttled": {
        "zh": "此网络地址登录失败次数过多，请 {seconds} 秒后再试。",
        "en": "Too many failed sign-ins from this address. Try again in {seconds} seconds.",
    },
    "expired": {
        "zh": "登录已过期，请重新登录。",
        "en": "The sign-in expired. Please sign in again.",
    },
    "csrf_failed": {
        "zh": "表单已过期，请刷新页面后重试。",
        "en": "The form expired. Reload the page and try again.",
    },
    "forbidden": {
        "zh": "您的角色无权访问此页面。",
        "en": "Your role does not give access to this page.",
    },
    "not_found": {"zh": "找不到该页面。", "en": "Page not found."},
    "dashboard": {"zh": "总览", "en": "Dashboard"},
    "outstanding": {"zh": "在贷余额", "en": "Outstanding"},
    "overdue": {"zh": "逾期金额", "en": "Overdue"},
    "overdue_orders": {"zh": "逾期订单", "en": "Overdue orders"},
    "open_legal_cases": {"zh": "法务案件（未结）", "en": "Open legal cases"},
    "open_risk_cases": {"zh": "风险案件（未结）", "en": "Open risk cases"},
    "complaints_waiting": {"zh": "待回复投诉", "en": "Complaints awaiting a response"},
    "complaints_overdue": {"zh": "其中超期 {count} 件", "en": "{count} past their deadline"},
    "decisions_30d": {"zh": "近 30 天审批结果", "en": "Decisions, last 30 days"},
    "delinquency_by_bucket": {
        "zh": "逾期分布（按月末）",
        "en": "Delinquency by bucket (month ends)",
    },
    "delinquency_now": {"zh": "当前逾期分布（金额）", "en": "Delinquency now (amount)"},
    "approved": {"zh": "通过", "en": "Approved"},
    "review": {"zh": "人工审核", "en": "Review"},
    "step_up": {"zh": "加强验证", "en": "Step-up"},
    "declined": {"zh": "拒绝", "en": "Declined"},
    "no_data": {"zh": "暂无数据", "en": "No data yet"},
    "signed_in_as": {"zh": "当前用户", "en": "Signed in as"},
    "role": {"zh": "角色", "en": "Role"},
    "merchant_portal": {"zh": "商家后台", "en": "Merchant portal"},
    "language": {"zh": "English", "en": "中文"},
    "collections": {"zh": "催收队列", "en": "Collections"},
    "order": {"zh": "订单", "en": "Order"},
    "shopper": {"zh": "用户", "en": "Shopper"},
    "days_past_due": {"zh": "逾期天数", "en": "Days past due"},
    "bucket": {"zh": "账龄", "en": "Bucket"},
    "promise": {"zh": "承诺还款", "en": "Promise"},
    "queue_empty": {"zh": "队列为空。", "en": "The queue is empty."},
    "status": {"zh": "状态", "en": "Status"},
    "record_call": {"zh": "记录通话结果", "en": "Record call outcome"},
    "call_recorded": {"zh": "通话结果已记录。", "en": "Call outcome recorded."},
    "outcome": {"zh": "结果", "en": "Outcome"},
    "outcome_reached": {"zh": "已联系上", "en": "Reached"},
    "outcome_no_answer": {"zh": "无人接听", "en": "No answer"},
    "outcome_wrong_number": {"zh": "号码错误", "en": "Wrong number"},
    "outcome_promise_to_pay": {"zh": "承诺还款", "en": "Promise to pay"},
    "outcome_refused": {"zh": "拒绝还款", "en": "Refused"},
    "promise_on": {"zh": "承诺日期", "en": "Promised date"},
    "promise_amount": {"zh": "承诺金额（元）", "en": "Promised amount (CNY)"},
    "note": {"zh": "备注", "en": "Note"},
    "contact_history": {"zh": "联系记录", "en": "Contact history"},
    "when": {"zh": "时间", "en": "When"},
    "channel": {"zh": "渠道", "en": "Channel"},
    "step": {"zh": "步骤", "en": "Step"},
    "bad_promise": {
        "zh": "承诺日期或金额格式不正确。",
        "en": "The promised date or amount is not valid.",
    },
}


def register(messages: dict[str, dict[str, str]]) -> None:
    """Add a page module's words; a key may be defined once only."""
    clashes = sorted(set(messages) & set(MESSAGES))
    if clashes:
        raise ValueError(f"console messages defined twice: {', '.join(clashes)}")
    for key, texts in messages.items():
        if set(texts) != set(LANGUAGES):
            raise ValueError(f"console message {key!r} needs exactly {LANGUAGES}")
    MESSAGES.update(messages)


def translate(key: str, language: str, **values: str) -> str:
    text = MESSAGES[key].get(language) or MESSAGES[key][DEFAULT_LANGUAGE]
    return text.format(**values) if values else text


def pick_language(requested: str | None, accept_language: str | None) -> str:
    if requested in LANGUAGES:
        return requested
    if accept_language and accept_language.lower().startswith("en"):
        return "en"
    return DEFAULT_LANGUAGE
