"""Bounces as MTAs write them, for the receiver's tests (the corpus of real-world ones lives with the classifier)."""

from __future__ import annotations


def dsn(recipient: str, status: str = "5.1.1", action: str = "failed",
        diagnostic: str = "smtp; 550 5.1.1 <{r}>: Recipient address rejected: User unknown",
        padding: int = 0) -> bytes:
    """A Postfix-style RFC 3464 DSN; ``padding`` bytes of returned message make it as large as needed."""
    body = "x" * 76 + "\r\n"
    returned = body * (padding // len(body) + 1) if padding else "Subject: Your order\r\n\r\nHello\r\n"
    return (
        "From: MAILER-DAEMON@mx.example (Mail Delivery System)\r\n"
        "Subject: Undelivered Mail Returned to Sender\r\n"
        "Auto-Submitted: auto-replied\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="B1"\r\n\r\n'
        "--B1\r\nContent-Type: text/plain\r\n\r\nI'm sorry to have to inform you...\r\n"
        "--B1\r\nContent-Type: message/delivery-status\r\n\r\n"
        "Reporting-MTA: dns; mx.example\r\n\r\n"
        f"Final-Recipient: rfc822; {recipient}\r\nOriginal-Recipient: rfc822;{recipient}\r\n"
        f"Action: {action}\r\nStatus: {status}\r\nDiagnostic-Code: {diagnostic.format(r=recipient)}\r\n\r\n"
        "--B1\r\nContent-Type: message/rfc822\r\n\r\n"
        f"{returned}"
        "--B1--\r\n"
    ).encode()


def arf(recipient: str | None) -> bytes:
    """An RFC 5965 complaint; ``None``: the address redacted, as large mailbox providers send it."""
    rcpt = f"Original-Rcpt-To: {recipient}\r\n" if recipient else ""
    return (
        "From: feedback@fbl.example\r\nSubject: complaint\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=feedback-report; boundary="F1"\r\n\r\n'
        "--F1\r\nContent-Type: text/plain\r\n\r\nThis is an abuse report\r\n"
        "--F1\r\nContent-Type: message/feedback-report\r\n\r\n"
        f"Feedback-Type: abuse\r\nUser-Agent: fbl/1.0\r\nVersion: 1\r\n{rcpt}\r\n"
        "--F1\r\nContent-Type: text/rfc822-headers\r\n\r\nSubject: Your order\r\nTo: redacted@fbl.example\r\n\r\n"
        "--F1--\r\n"
    ).encode()


NOT_A_BOUNCE = b"From: someone@example.net\r\nSubject: hello\r\n\r\nJust a question about my order.\r\n"
