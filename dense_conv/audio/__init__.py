"""Audio on top of the ops: the half-band decimation filter and the octave-by-octave CQT and VQT."""
from .cqt import CQT, VQT, CQTKernels, cqt_frequencies, note_names
from .octave import halfband_filter, halfband_response

__all__ = ["CQT", "VQT", "CQTKernels", "cqt_frequencies", "note_names", "halfband_filter", "halfband_response"]
