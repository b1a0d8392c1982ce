//! ONC RPC version 2 (RFC 5531) with XDR (RFC 4506), TCP record marking and rpcbind (RFC 1833).
