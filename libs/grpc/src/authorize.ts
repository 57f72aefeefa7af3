import { ResponderBuilder, ServerInterceptingCall, ServerListenerBuilder, status, type ServerInterceptor } from '@grpc/grpc-js';
import { quoted } from '@llmgw/errors';
import { peerIdentity } from './mesh-tls.js';

/**
 * Who may call each method a server serves, by full path (`/pkg.Service/Method`): the mesh
 * identities allowed, or `public` for a method any caller reaches (it checks the caller's API
 * key itself). A path the policy does not name is refused: a new method is closed until someone
 * decides who calls it.
 */
export type MethodAccess = (path: string) => readonly string[] | 'public' | undefined;

/**
 * Refuses, with PERMISSION_DENIED, a call whose TLS identity the policy does not allow for the
 * method. The check runs before the request is read, so a refused caller costs no parsing.
 */
export function authorizeCalls(access: MethodAccess): ServerInterceptor {
  return (method, call) => {
    const allowed = access(method.path);
    if (allowed === 'public') return new ServerInterceptingCall(call);
    const caller = peerIdentity(call.getAuthContext().sslPeerCertificate);
    if (caller !== undefined && allowed?.includes(caller)) return new ServerInterceptingCall(call);
    const details = `${caller ?? 'a caller without a mesh identity'} may not call ${quoted(method.path)}`;
    const listener = new ServerListenerBuilder().withOnReceiveMetadata(() => call.sendStatus({ code: status.PERMISSION_DENIED, details })).build();
    return new ServerInterceptingCall(call, new ResponderBuilder().withStart((next) => next(listener)).build());
  };
}
