"""The real local Web Push service the tests use; it lives in demo/push_service.py
(``make run`` serves it for the demo too). Its module docstring documents the API."""

from demo.push_service import PushService, Received, decrypt_aes128gcm

__all__ = ["PushService", "Received", "decrypt_aes128gcm"]
