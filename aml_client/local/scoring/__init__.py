"""Entry scripts for Microsoft's inference server, one per wire contract.

The server loads them by file path (``AZUREML_ENTRY_SCRIPT``), exactly as an Azure ML
deployment loads ``score.py``; they import pandas and scikit-learn at the top, as such scripts
do, and so must never be imported by the rest of the package.
"""
