using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;

namespace Apm.Server;

/// <summary><c>GET /api/alerts?state=firing|resolved|pending|withdrawn|all[&amp;jvm=id]</c> (default firing). See docs/api.md.</summary>
public static class AlertEndpoints
{
    /// <summary>Maps the alerts endpoint.</summary>
    public static IEndpointRouteBuilder MapApmAlerts(this IEndpointRouteBuilder app)
    {
        app.MapGet("/api/alerts", ListAsync);
        return app;
    }

    private static async Task<IResult> ListAsync(AlertQueries alerts, HttpRequest request, CancellationToken ct)
    {
        var state = request.Query["state"].ToString();
        if (string.IsNullOrEmpty(state)) state = "firing";
        if (!AlertQueries.States.Contains(state))
        {
            return Results.Json(new ErrorResponse("state: expected firing, resolved, pending, withdrawn or all"), ApiJsonContext.Default.ErrorResponse, statusCode: 400);
        }

        var jvm = request.Query["jvm"].ToString();
        var list = await alerts.ListAsync(state, string.IsNullOrEmpty(jvm) ? null : jvm, ct).ConfigureAwait(false);
        return Results.Json(list, ApiJsonContext.Default.IReadOnlyListAlertRecord);
    }
}
