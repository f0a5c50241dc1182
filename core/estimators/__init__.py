"""Gradient estimators without backpropagation through the objective: zeroth-order and policy gradient."""
