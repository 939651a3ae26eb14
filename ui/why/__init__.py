"""The See why tab's sub-tabs, one module each (composed by ui/explain_tab.py)."""
