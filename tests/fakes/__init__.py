"""Fake platforms on 127.0.0.1 that the real clients talk to, shared by several test folders.

``telegram_bot_api`` is the Telegram Bot API server (python-telegram-bot connects to it), ``telegram_payloads``
builds the updates it hands out, ``discord_api`` is Discord's REST API and gateway (discord.py connects to it).
"""
