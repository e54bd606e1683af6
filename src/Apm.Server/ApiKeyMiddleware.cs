using System.Security.Cryptography;
using System.Text;
using Microsoft.AspNetCore.Http;

namespace Apm.Server;

/// <summary>Requires the configured API key on /api/* (constant-time comparison). /healthz stays open.</summary>
public sealed class ApiKeyMiddleware(RequestDelegate next, AuthOptions auth)
{
    private readonly byte[] _key = Encoding.UTF8.GetBytes(auth.ApiKey ?? string.Empty);

    public Task InvokeAsync(HttpContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        if (_key.Length == 0 || !context.Request.Path.StartsWithSegments("/api", StringComparison.Ordinal)) return next(context);
        var presented = context.Request.Headers["X-Api-Key"].ToString();
        if (string.IsNullOrEmpty(presented))
        {
            var authz = context.Request.Headers.Authorization.ToString();
            if (authz.StartsWith("Bearer ", StringComparison.Ordinal)) presented = authz[7..];
        }

        if (CryptographicOperations.FixedTimeEquals(Encoding.UTF8.GetBytes(presented), _key)) return next(context);
        context.Response.StatusCode = StatusCodes.Status401Unauthorized;
        context.Response.Headers.WWWAuthenticate = "Bearer";
        return Task.CompletedTask;
    }
}
