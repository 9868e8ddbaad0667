"""Disputes between shoppers and merchants over an order: evidence from both sides, deadlines,
an operator's decision and the money that follows it."""
