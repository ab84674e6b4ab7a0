"""The source contract: what the models need, how this account's tables meet it, discovery."""
