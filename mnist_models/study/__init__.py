"""The notebook's questions Q1-Q7: answers (one small function per answer, which the study
command and notebooks/mnist.ipynb both call), questions (the study's run), page (study.md)
and figures."""
