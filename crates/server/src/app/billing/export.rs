//! Exports of bills for finance: CSV (UTF-8 with a BOM, formulas defused); the XLSX
//! workbook is in `xlsx.rs`.

use super::*;

/// The bill to export, for a caller who may read it.
pub async fn bill_for_export(
    s: &AppState,
    ctx: &RequestContext,
    actor: &Actor,
    month: &str,
    d: DepartmentId,
) -> Result<Bill, Error> {
    authorize(&actor.principal, Action::BillRead(d))?;
    let _ = ctx;
    load_bill(&s.store, month, d).await
}

fn csv_field(s: &str) -> String {
    // Quote always; double quotes inside; a leading = + - @ is defused for spreadsheets.
    let s = if s.starts_with(['=', '+', '-', '@']) {
        format!("'{s}")
    } else {
        s.to_string()
    };
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// A bill as CSV for finance (UTF-8 with a BOM so spreadsheet programs read the Chinese
/// header): one row per line, then the adjustments, then the total.
pub fn bill_csv(b: &Bill) -> String {
    let mut out = String::from("\u{feff}月份/month,部门/department,项目/project,云服务商/provider,资源ID/resource_id,类型/kind,名称/name,运行秒/running_secs,停机或占用秒/stopped_secs,vCPU秒/vcpu_secs,内存MiB秒/memory_mib_secs,磁盘GiB秒/disk_gib_secs,GPU秒/gpu_secs,金额元/amount_yuan\r\n");
    for l in &b.lines {
        out.push_str(&format!(
            "{},{},{},{},{},{},{},{},{},{},{},{},{},{}\r\n",
            b.month,
            csv_field(&b.department_name),
            csv_field(&l.project_name),
            csv_field(&l.provider_name),
            l.resource_id,
            l.kind.as_str(),
            csv_field(&l.name),
            l.running_secs,
            l.stopped_secs,
            l.vcpu_secs,
            l.memory_mib_secs,
            l.disk_gib_secs,
            l.gpu_secs,
            l.amount.yuan()
        ));
    }
    for a in &b.adjustments {
        out.push_str(&format!(
            "{},{},,,{},adjustment,{},,,,,,,{}\r\n",
            b.month,
            csv_field(&b.department_name),
            a.id,
            csv_field(&a.reason),
            a.amount.yuan()
        ));
    }
    out.push_str(&format!(
        "{},{},,,,total,合计/total,,,,,,,{}\r\n",
        b.month,
        csv_field(&b.department_name),
        b.total.yuan()
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_cells_cannot_become_formulas() {
        assert_eq!(csv_field("=1+1"), "\"'=1+1\"");
        assert_eq!(csv_field("a\"b"), "\"a\"\"b\"");
    }
}
