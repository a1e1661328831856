"""Code shared by the gateway (`app`) and the workers (`tasks`): settings, storage, job records."""
