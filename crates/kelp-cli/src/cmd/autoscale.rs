//! `kelp autoscale create|list|delete`: writes and clears a Function's
//! `spec.horizontalPodAutoscaler`, as the kubeless CLI did.

use std::collections::BTreeMap;

use anyhow::bail;
use kelp_api::{Function, HpaTemplate};
use kube::Api;
use kube::api::ListParams;
use serde_json::{Value, json};

use super::{describe, kind, patch_json, require_json};
use crate::build::autoscale::{Metric, hpa, summarise};
use crate::build::function::patched_function;
use crate::build::merge_patch_to;
use crate::build::trigger::with_resource_version;
use crate::output::{Format, emit, info, to_json, to_yaml};
use crate::table::{Table, kubeless};
use crate::target::{GlobalArgs, connect};

/// `kelp autoscale ...`
#[derive(Debug, clap::Subcommand)]
pub(crate) enum AutoscaleCommand {
    /// Scale a function automatically on CPU or calls per second
    Create(CreateArgs),
    /// List the functions' autoscalers
    #[command(visible_alias = "ls")]
    List(ListArgs),
    /// Remove a function's autoscaler
    Delete(DeleteArgs),
}

/// `autoscale create`.
#[derive(Debug, clap::Args)]
pub(crate) struct CreateArgs {
    /// The function
    name: String,
    /// Minimum replicas
    #[arg(long, default_value_t = 1)]
    min: i32,
    /// Maximum replicas
    #[arg(long, default_value_t = 1)]
    max: i32,
    /// The metric to follow
    #[arg(long, value_enum, default_value = "cpu")]
    metric: Metric,
    /// Target average: a CPU percentage (cpu), or calls per second as a quantity (qps)
    #[arg(long)]
    value: String,
}

/// `autoscale list`.
#[derive(Debug, clap::Args)]
pub(crate) struct ListArgs {
    /// Output format: json or yaml, one document per autoscaler (default: a table)
    #[arg(short = 'o', long = "out", visible_alias = "output", value_enum)]
    output: Option<Format>,
}

/// `autoscale delete`.
#[derive(Debug, clap::Args)]
pub(crate) struct DeleteArgs {
    /// The function
    name: String,
}

/// Runs an `autoscale` subcommand.
pub(crate) async fn run(global: &GlobalArgs, command: AutoscaleCommand) -> anyhow::Result<()> {
    let target = connect(global).await?;
    let function_kind = kind("Function");
    match command {
        AutoscaleCommand::Create(args) => {
            let current = require_json(&target, function_kind, &target.namespace, &args.name).await?;
            let labels: BTreeMap<String, String> =
                serde_json::from_value(current.pointer("/metadata/labels").cloned().unwrap_or(json!({})))?;
            let autoscaler = hpa(&args.name, &target.namespace, &labels, args.metric, args.min, args.max, &args.value)?;
            let old = current.pointer("/spec/horizontalPodAutoscaler").cloned().unwrap_or(json!({}));
            let patch = with_resource_version(
                &current,
                json!({"spec": {"horizontalPodAutoscaler": merge_patch_to(&old, &autoscaler)}}),
            );
            patched_function(&current, &patch)?;
            info("Adding autoscaling rule to the function...");
            patch_json(&target, function_kind, &target.namespace, &args.name, &current, &patch).await?;
            info(format!("Autoscaling rule for {} submitted for deployment", args.name));
            Ok(())
        }
        AutoscaleCommand::Delete(args) => {
            let current = require_json(&target, function_kind, &target.namespace, &args.name).await?;
            let configured = current
                .pointer("/spec/horizontalPodAutoscaler")
                .is_some_and(|h| HpaTemplate(h.clone()).is_configured());
            if !configured {
                bail!("Not found an autoscale definition for {}", args.name);
            }
            let patch = with_resource_version(&current, json!({"spec": {"horizontalPodAutoscaler": null}}));
            info("Removing autoscaling rule from the function...");
            patch_json(&target, function_kind, &target.namespace, &args.name, &current, &patch).await?;
            info(format!("Removed Autoscaling rule for {}", args.name));
            Ok(())
        }
        AutoscaleCommand::List(args) => {
            let api: Api<Function> = Api::namespaced(target.client.clone(), &target.namespace);
            let functions = api.list(&ListParams::default()).await.map_err(|e| describe(e, &target))?.items;
            let autoscalers: Vec<(String, String, HpaTemplate)> = functions
                .into_iter()
                .filter_map(|f| {
                    let hpa = f.spec.horizontal_pod_autoscaler.filter(HpaTemplate::is_configured)?;
                    Some((f.metadata.name.unwrap_or_default(), f.metadata.namespace.unwrap_or_default(), hpa))
                })
                .collect();
            match args.output {
                Some(format) => {
                    let mut text = String::new();
                    for (i, (_, _, hpa)) in autoscalers.iter().enumerate() {
                        match format {
                            Format::Json => text.push_str(&to_json(&hpa.0)?),
                            Format::Yaml => {
                                if i > 0 {
                                    text.push_str("---\n");
                                }
                                text.push_str(&to_yaml(&hpa.0)?);
                            }
                        }
                    }
                    emit(text)
                }
                None => emit(list_table(&autoscalers).render()),
            }
        }
    }
}

/// The table of `autoscale list`.
pub(crate) fn list_table(autoscalers: &[(String, String, HpaTemplate)]) -> Table {
    let mut table =
        Table::kubeless(&["NAME", "NAMESPACE", "TARGET", "MIN", "MAX", "METRIC", "VALUE"], kubeless::LIST_WIDTH);
    for (name, namespace, hpa) in autoscalers {
        let summary = summarise(hpa);
        let hpa_name = hpa.0.pointer("/metadata/name").and_then(Value::as_str).unwrap_or(name);
        table.row([
            hpa_name.to_owned(),
            namespace.clone(),
            summary.target,
            summary.min,
            summary.max,
            summary.metric,
            summary.value,
        ]);
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn autoscale_table() {
        let labels = BTreeMap::new();
        let cpu = HpaTemplate(hpa("hello", "default", &labels, Metric::Cpu, 1, 3, "70").unwrap());
        let qps = HpaTemplate(hpa("api", "default", &labels, Metric::Qps, 2, 10, "100").unwrap());
        let rows = vec![("hello".to_owned(), "default".to_owned(), cpu), ("api".to_owned(), "default".to_owned(), qps)];
        assert_eq!(
            list_table(&rows).render(),
            concat!(
                "NAME \tNAMESPACE\tTARGET\tMIN\tMAX\tMETRIC        \tVALUE\n",
                "hello\tdefault  \thello \t1  \t3  \tcpu           \t70   \n",
                "api  \tdefault  \tapi   \t2  \t10 \tfunction_calls\t100  \n"
            )
        );
    }
}
