"""Gymnasium environments the policies train and run on (sim and live backends behind one API)."""
