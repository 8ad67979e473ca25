"""The Streamlit dashboard: researcher pages and the Color Turing Test (`app.py`, pages in `views/`)."""
