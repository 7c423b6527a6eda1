"""Marks the folder as a package so pytest gives its tests unique module names."""
