"""Widgets of the console: the overview header, the rack heatmap, tables."""
