"""Teaching: the guided lessons (content as data, the numbers each lesson computes from its
runs). Teaching code may use the decoding core, traces and frames; figures may use teaching,
never the reverse."""
