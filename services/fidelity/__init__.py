"""Fidelity: versioned instruments, scored observations of practice, certification, drift."""
