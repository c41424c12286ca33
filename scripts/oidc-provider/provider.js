// An OpenID provider on loopback for identity's social-login tests (ADR 0045): the certified
// `oidc-provider` with one confidential client that must use PKCE, and an interaction that
// signs in whoever the authorization request's `login_hint` names, so a test can follow the
// redirects with a plain HTTP client. Test use only: it has no passwords.
//
//   node provider.js            (PORT=0: any free port; CLIENT_ID, CLIENT_SECRET, REDIRECT_URI;
//                                EXIT_WITH_STDIN=1: stop when stdin closes)
//
// Prints `issuer <url>` on stdout once it listens. A `login_hint` of `verified:<email>` signs
// in an account whose email is verified, `unverified:<email>` one whose email is not; the
// account's subject is the hint itself.
import { createServer } from 'node:http';
import { generateKeyPairSync } from 'node:crypto';
import Provider from 'oidc-provider';

const clientId = process.env.CLIENT_ID ?? 'ticketing';
const clientSecret = process.env.CLIENT_SECRET ?? 'ticketing-test-client-secret';
const redirectUri = process.env.REDIRECT_URI ?? 'http://127.0.0.1:8080/v1/auth/oidc/test/callback';

function account(id) {
  const [kind, email] = id.split(/:(.*)/s);
  if (!email || !['verified', 'unverified'].includes(kind)) return undefined;
  return {
    accountId: id,
    claims: async () => ({ sub: id, email, email_verified: kind === 'verified', name: email.split('@')[0] }),
  };
}

// Ends with whoever started it: when stdin closes (the test process exited, even killed).
if (process.env.EXIT_WITH_STDIN) {
  process.stdin.on('end', () => process.exit(0));
  process.stdin.resume();
}

const server = createServer();
server.listen(Number(process.env.PORT ?? 0), '127.0.0.1', () => {
  const issuer = `http://127.0.0.1:${server.address().port}`;
  // A signing key of this run only: the relying party must fetch it from the JWKS.
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const provider = new Provider(issuer, {
    clients: [
      {
        client_id: clientId,
        client_secret: clientSecret,
        redirect_uris: [redirectUri],
        grant_types: ['authorization_code'],
        response_types: ['code'],
        token_endpoint_auth_method: 'client_secret_basic',
      },
    ],
    jwks: { keys: [{ ...privateKey.export({ format: 'jwk' }), kid: 'test-run', use: 'sig', alg: 'RS256' }] },
    pkce: { required: () => true },
    claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['name'] },
    findAccount: async (_ctx, id) => account(id),
    features: { devInteractions: { enabled: false } },
    interactions: { url: (_ctx, interaction) => `/interaction/${interaction.uid}` },
    cookies: { keys: ['test-only-cookie-key'] },
  });

  // Signs in the hinted account, then consents to what the client asked for.
  async function interaction(req, res) {
    try {
      const details = await provider.interactionDetails(req, res);
      const { prompt, params } = details;
      let result;
      if (prompt.name === 'login') {
        const hint = String(params.login_hint ?? '');
        if (!account(hint)) {
          res.writeHead(400, { 'content-type': 'text/plain' }).end('login_hint must be verified:<email> or unverified:<email>');
          return;
        }
        result = { login: { accountId: hint } };
      } else {
        const grant = details.grantId
          ? await provider.Grant.find(details.grantId)
          : new provider.Grant({ accountId: details.session.accountId, clientId: params.client_id });
        if (prompt.details.missingOIDCScope) grant.addOIDCScope(prompt.details.missingOIDCScope.join(' '));
        if (prompt.details.missingOIDCClaims) grant.addOIDCClaims(prompt.details.missingOIDCClaims);
        result = { consent: { grantId: await grant.save() } };
      }
      await provider.interactionFinished(req, res, result, { mergeWithLastSubmission: false });
    } catch (err) {
      res.writeHead(500, { 'content-type': 'text/plain' }).end(String(err));
    }
  }

  const handle = provider.callback();
  server.on('request', (req, res) => {
    if (req.url.startsWith('/interaction/')) interaction(req, res);
    else handle(req, res);
  });
  console.log(`issuer ${issuer}`);
});
