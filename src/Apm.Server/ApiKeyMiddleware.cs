using System.Security.Cryptography;
using System.Text;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;

namespace Apm.Server;

/// <summary>
/// Requires the configured API key on /api/* (constant-time comparison); when dashboard users are configured, a
/// signed-in user's cookie is accepted too. /healthz stays open.
/// </summary>
public sealed class ApiKeyMiddleware(RequestDelegate next, AuthOptions auth)
{
    private readonly byte[] _key = Encoding.UTF8.GetBytes(auth.ApiKey ?? string.Empty);

    public async Task InvokeAsync(HttpContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        if (!auth.Enabled || !context.Request.Path.StartsWithSegments("/api", StringComparison.Ordinal))
        {
            await next(context).ConfigureAwait(false);
            return;
        }

        if (_key.Length > 0)
        {
            var presented = context.Request.Headers["X-Api-Key"].ToString();
            if (string.IsNullOrEmpty(presented))
            {
                var authz = context.Request.Headers.Authorization.ToString();
                if (authz.StartsWith("Bearer ", StringComparison.Ordinal)) presented = authz[7..];
            }

            if (CryptographicOperations.FixedTimeEquals(Encoding.UTF8.GetBytes(presented), _key))
            {
                await next(context).ConfigureAwait(false);
                return;
            }
        }

        // The dashboard registers cookie authentication when users are configured; without it there is nothing to check.
        if (auth.HasUsers && context.RequestServices.GetService<IAuthenticationSchemeProvider>() is { } schemes
            && await schemes.GetDefaultAuthenticateSchemeAsync().ConfigureAwait(false) is not null
            && (await context.AuthenticateAsync().ConfigureAwait(false)).Succeeded)
        {
            await next(context).ConfigureAwait(false);
            return;
        }

        context.Response.StatusCode = StatusCodes.Status401Unauthorized;
        context.Response.Headers.WWWAuthenticate = "Bearer";
    }
}
