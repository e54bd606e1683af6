using System.Security.Cryptography;
using System.Text;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Net.Http.Headers;

namespace Apm.Server;

/// <summary>
/// Guards /api/*. Requires the configured API key (constant-time comparison); when dashboard users are configured, a
/// signed-in user's cookie is accepted too. And, against cross-site requests: a state-changing request (anything but
/// GET, HEAD, OPTIONS) that is not authenticated by the API key must carry <c>X-Apm-Request</c> or a JSON content type,
/// which a page of another site cannot send without a CORS preflight, and no CORS is ever granted (403 otherwise). So
/// a web page the operator visits cannot ask a loopback Apm for a heap dump or an upload. /healthz stays open.
/// </summary>
public sealed class ApiKeyMiddleware(RequestDelegate next, AuthOptions auth)
{
    /// <summary>The header that marks a request as sent by a program or a same-origin script, not by a cross-site form.</summary>
    public const string RequestHeader = "X-Apm-Request";

    private readonly byte[] _key = Encoding.UTF8.GetBytes(auth.ApiKey ?? string.Empty);

    public async Task InvokeAsync(HttpContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        if (!context.Request.Path.StartsWithSegments("/api", StringComparison.Ordinal))
        {
            await next(context).ConfigureAwait(false);
            return;
        }

        var byKey = auth.Enabled && HasKey(context.Request);
        if (auth.Enabled && !byKey && !await HasUserAsync(context).ConfigureAwait(false))
        {
            context.Response.StatusCode = StatusCodes.Status401Unauthorized;
            context.Response.Headers.WWWAuthenticate = "Bearer";
            return;
        }

        if (!byKey && IsStateChanging(context.Request.Method) && !IsNotCrossSite(context.Request))
        {
            await Results.Json(new ErrorResponse($"a state-changing request needs the header '{RequestHeader}: 1' (or the API key): without it, any web page could send it"),
                ApiJsonContext.Default.ErrorResponse, statusCode: StatusCodes.Status403Forbidden).ExecuteAsync(context).ConfigureAwait(false);
            return;
        }

        await next(context).ConfigureAwait(false);
    }

    /// <summary>Whether <paramref name="method"/> may change state (everything but GET, HEAD, OPTIONS and TRACE).</summary>
    public static bool IsStateChanging(string method) =>
        !(HttpMethods.IsGet(method) || HttpMethods.IsHead(method) || HttpMethods.IsOptions(method) || HttpMethods.IsTrace(method));

    /// <summary>
    /// A request a cross-site page cannot make without a CORS preflight (which this server never grants): it carries
    /// <see cref="RequestHeader"/>, or a JSON content type (forms can only send urlencoded, multipart or plain text).
    /// </summary>
    public static bool IsNotCrossSite(HttpRequest request)
    {
        ArgumentNullException.ThrowIfNull(request);
        if (!string.IsNullOrEmpty(request.Headers[RequestHeader])) return true;
        return MediaTypeHeaderValue.TryParse(request.ContentType, out var type)
               && string.Equals(type.MediaType.Value, "application/json", StringComparison.OrdinalIgnoreCase);
    }

    private bool HasKey(HttpRequest request)
    {
        if (_key.Length == 0) return false;
        var presented = request.Headers["X-Api-Key"].ToString();
        if (string.IsNullOrEmpty(presented))
        {
            var authz = request.Headers.Authorization.ToString();
            if (authz.StartsWith("Bearer ", StringComparison.Ordinal)) presented = authz[7..];
        }

        return CryptographicOperations.FixedTimeEquals(Encoding.UTF8.GetBytes(presented), _key);
    }

    /// <summary>A signed-in dashboard user (the dashboard registers cookie authentication when users are configured).</summary>
    private async Task<bool> HasUserAsync(HttpContext context) =>
        auth.HasUsers && context.RequestServices.GetService<IAuthenticationSchemeProvider>() is { } schemes
        && await schemes.GetDefaultAuthenticateSchemeAsync().ConfigureAwait(false) is not null
        && (await context.AuthenticateAsync().ConfigureAwait(false)).Succeeded;
}
