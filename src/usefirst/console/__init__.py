"""Web console for operators and for merchants' staff."""
