"""Privacy: tamper-evident audit of PII access, export and erasure, key rotation, complaints."""
