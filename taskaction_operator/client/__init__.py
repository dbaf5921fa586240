"""The client side: the actions client (upstream's ActionsClient), the TaskActions it builds, run
files, and run creation. Independent of the operator (``controller``)."""
