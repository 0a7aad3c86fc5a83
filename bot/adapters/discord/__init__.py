"""The Discord adapter (discord.py): logging, slash commands, course roles and SKU entitlements."""
