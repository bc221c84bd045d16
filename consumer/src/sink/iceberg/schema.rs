//! The table's schema from the records themselves: a table created from
//! the first batch (`autoCreate`), optional columns added for fields the
//! table does not have yet (`evolveSchema`). Types are those the Arrow JSON
//! reader infers: whole numbers long, other numbers double, `true`/`false`
//! boolean, strings string, objects structs, arrays lists.

use arrow::datatypes::Schema as ArrowSchema;
use arrow::error::ArrowError;
use iceberg::spec::Schema;
use iceberg::transaction::AddColumn;

/// The fields `lines` carry, with their inferred types.
pub fn infer<'a>(lines: impl Iterator<Item = &'a [u8]>) -> Result<ArrowSchema, String> {
    let values = lines.map(|line| {
        serde_json::from_slice::<serde_json::Value>(line)
            .map_err(|e| ArrowError::JsonError(e.to_string()))
    });
    arrow::json::reader::infer_json_schema_from_iterator(values).map_err(|e| e.to_string())
}

/// A new table's schema: every field an optional column.
pub fn for_new_table(inferred: &ArrowSchema) -> Result<Schema, String> {
    iceberg::arrow::arrow_schema_to_schema_auto_assign_ids(inferred).map_err(|e| e.to_string())
}

/// Optional columns for the top-level fields the table lacks, in the order
/// the records name them.
pub fn new_columns(table: &Schema, inferred: &ArrowSchema) -> Result<Vec<AddColumn>, String> {
    let mut added = Vec::new();
    for field in inferred.fields() {
        if table.field_by_name(field.name()).is_some() {
            continue;
        }
        // Through a one-field schema, so nested types get their ids.
        let alone = ArrowSchema::new(vec![field.as_ref().clone()]);
        let converted = for_new_table(&alone)
            .map_err(|e| format!("field `{}` ({}): {e}", field.name(), field.data_type()))?;
        let column = converted
            .field_by_name(field.name())
            .expect("the one field converted");
        added.push(AddColumn::optional(
            field.name(),
            (*column.field_type).clone(),
        ));
    }
    Ok(added)
}

#[cfg(test)]
mod tests {
    use iceberg::spec::{NestedField, PrimitiveType, Type};

    use super::*;

    #[test]
    fn a_new_table_gets_every_field_as_an_optional_column() {
        let lines: [&[u8]; 2] = [
            br#"{"id":1,"name":"a","tags":["x"],"at":{"lat":1.5}}"#,
            br#"{"id":2,"ok":true}"#,
        ];
        let schema = for_new_table(&infer(lines.into_iter()).unwrap()).unwrap();
        let id = schema.field_by_name("id").unwrap();
        assert_eq!(*id.field_type, Type::Primitive(PrimitiveType::Long));
        assert!(!id.required);
        for name in ["name", "tags", "at", "ok"] {
            assert!(schema.field_by_name(name).is_some(), "{name}: {schema:?}");
        }
    }

    #[test]
    fn only_fields_the_table_lacks_become_columns() {
        let table = Schema::builder()
            .with_fields(vec![NestedField::required(
                1,
                "id",
                Type::Primitive(PrimitiveType::Long),
            )
            .into()])
            .build()
            .unwrap();
        let lines: [&[u8]; 1] = [br#"{"id":1,"score":2.5,"at":{"lat":1.5}}"#];
        let added = new_columns(&table, &infer(lines.into_iter()).unwrap()).unwrap();
        assert_eq!(added.len(), 2);
        let none = new_columns(&table, &infer([&br#"{"id":3}"#[..]].into_iter()).unwrap()).unwrap();
        assert!(none.is_empty());
    }
}
