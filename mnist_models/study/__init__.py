"""The notebook's questions Q1-Q7 answered in one command: questions (the run), page
(study.md) and figures."""
