"""syncd: runs a support team's processes across Zendesk, Salesforce and SharePoint."""
__version__ = "0.1.0"
