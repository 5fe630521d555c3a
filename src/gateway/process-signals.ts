/** What the gateway's supervisor and its workers share: the ready message. */

/** Worker → primary: the SMTP listener is up and the signal handlers are in place. */
export const READY_MESSAGE = 'nimbus:gateway-ready';
