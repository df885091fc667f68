from services.embedded.stack import stop_on_sigterm

# A CI timeout or kill sends SIGTERM: let the session fixtures stop the stack.
stop_on_sigterm()
