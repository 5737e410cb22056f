"""Audio on top of the ops: the half-band decimation filter, the octave-by-octave CQT and VQT, the inverse CQT."""
from .cqt import CQT, VQT, CQTKernels, cqt_frequencies, note_names
from .icqt import ICQT, icqt
from .octave import halfband_filter, halfband_response

__all__ = ["CQT", "VQT", "CQTKernels", "cqt_frequencies", "note_names", "ICQT", "icqt", "halfband_filter",
           "halfband_response"]
