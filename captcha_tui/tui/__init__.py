"""The Textual dashboard: a training screen, an eval screen and a device picker over the core.

Only this package imports Textual. Workers run the trainer, the data pipeline and the predictor off the UI
thread and hand results over as messages (``messages.py``); widgets only render.
"""
