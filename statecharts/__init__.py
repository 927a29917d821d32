"""Turns the model's statechart declarations into networkx graphs and drawings."""
